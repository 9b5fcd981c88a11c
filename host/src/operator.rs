//! The operator's policy: which hosts steps may call and which step budgets apply,
//! host-wide, overridden per plugin, narrowed per tenant.
//!
//! A request must be allowed by the plugin's manifest **and** by the
//! operator: the plugin's own operator list when one is set (it may narrow or
//! extend the host-wide list), else the host-wide list; and, when the tenant
//! has a list, by that list too.

use std::collections::HashMap;
use std::sync::Arc;

use crate::limits::Limits;
use courier_egress::AllowedHost;

/// The operator's settings for one plugin; unset fields keep the host-wide ones.
#[derive(Debug, Clone, Default)]
pub struct PluginPolicy {
    /// Replaces the host-wide allowed hosts for this plugin.
    pub allowed_hosts: Option<Vec<AllowedHost>>,
    /// Replaces the host-wide step budgets for this plugin's steps. Its memory
    /// limit cannot exceed the host-wide one (the size of the engine's memory
    /// slots): [`crate::HostBuilder::build`] fails if it does. The shared
    /// clients' settings ([`crate::ClientSettings`]) are host-wide only.
    pub limits: Option<Limits>,
    /// Replaces the host-wide answer to contract drift for this plugin's
    /// steps ([`crate::HostBuilder::contract_drift`]).
    pub contract_drift: Option<ContractDrift>,
}

/// What the host does with a step whose output does not match the output
/// schema its call declares (the plugin's contract with the platform).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContractDrift {
    /// The step result lists the mismatches (`contract_drift`); its outcome stands.
    #[default]
    Record,
    /// The step also fails, with kind `contract-drift`; the output stays in
    /// the result for inspection.
    Fail,
}

/// The whole operator policy, fixed when the host is built.
#[derive(Default)]
pub(crate) struct OperatorPolicy {
    hosts: Arc<[AllowedHost]>,
    limits: Arc<Limits>,
    drift: ContractDrift,
    plugins: HashMap<String, PluginOverrides>,
    tenants: HashMap<String, Arc<[AllowedHost]>>,
}

/// A plugin's own hosts, limits and answer to drift, where the operator set them.
type PluginOverrides = (
    Option<Arc<[AllowedHost]>>,
    Option<Arc<Limits>>,
    Option<ContractDrift>,
);

/// What applies to one step.
pub(crate) struct Effective {
    /// The operator's allowed hosts for this plugin.
    pub(crate) hosts: Arc<[AllowedHost]>,
    /// The tenant's narrowing, if any.
    pub(crate) tenant_hosts: Option<Arc<[AllowedHost]>>,
    /// The step's limits.
    pub(crate) limits: Arc<Limits>,
    /// What a mismatch between output and output schema does.
    pub(crate) drift: ContractDrift,
}

impl OperatorPolicy {
    pub(crate) fn new(
        hosts: Vec<AllowedHost>,
        limits: Limits,
        drift: ContractDrift,
        plugins: HashMap<String, PluginPolicy>,
        tenants: HashMap<String, Vec<AllowedHost>>,
    ) -> Result<Self, String> {
        limits.check()?;
        let mut names: Vec<&String> = plugins.keys().collect();
        names.sort();
        for name in names {
            let Some(l) = &plugins[name].limits else {
                continue;
            };
            l.check().map_err(|e| format!("plugin `{name}`: {e}"))?;
            if l.memory_bytes > limits.memory_bytes {
                return Err(format!(
                    "plugin `{name}`: `limits.memory_bytes` of {} exceeds the host-wide {} bytes \
                     (the size of the engine's memory slots)",
                    l.memory_bytes, limits.memory_bytes
                ));
            }
        }
        Ok(Self {
            hosts: hosts.into(),
            limits: Arc::new(limits),
            drift,
            plugins: plugins
                .into_iter()
                .map(|(name, p)| {
                    (
                        name,
                        (
                            p.allowed_hosts.map(Into::into),
                            p.limits.map(Arc::new),
                            p.contract_drift,
                        ),
                    )
                })
                .collect(),
            tenants: tenants.into_iter().map(|(t, h)| (t, h.into())).collect(),
        })
    }

    /// The host-wide limits.
    pub(crate) fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    /// What applies to a step of `tenant` running `plugin`.
    pub(crate) fn for_step(&self, tenant: &str, plugin: &str) -> Effective {
        let (hosts, limits, drift) = match self.plugins.get(plugin) {
            Some((h, l, d)) => (
                h.as_ref().unwrap_or(&self.hosts),
                l.as_ref().unwrap_or(&self.limits),
                d.unwrap_or(self.drift),
            ),
            None => (&self.hosts, &self.limits, self.drift),
        };
        Effective {
            hosts: hosts.clone(),
            tenant_hosts: self.tenants.get(tenant).cloned(),
            limits: limits.clone(),
            drift,
        }
    }
}
