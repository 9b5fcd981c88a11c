//! The operator's policy: which hosts steps may call and which limits apply,
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
    /// Replaces the host-wide limits for this plugin. Its memory limit cannot
    /// exceed the host-wide one (the size of the engine's memory slots).
    pub limits: Option<Limits>,
}

/// The whole operator policy, fixed when the host is built.
#[derive(Default)]
pub(crate) struct OperatorPolicy {
    hosts: Arc<[AllowedHost]>,
    limits: Arc<Limits>,
    plugins: HashMap<String, PluginOverrides>,
    tenants: HashMap<String, Arc<[AllowedHost]>>,
}

/// A plugin's own hosts and limits, where the operator set them.
type PluginOverrides = (Option<Arc<[AllowedHost]>>, Option<Arc<Limits>>);

/// What applies to one step.
pub(crate) struct Effective {
    /// The operator's allowed hosts for this plugin.
    pub(crate) hosts: Arc<[AllowedHost]>,
    /// The tenant's narrowing, if any.
    pub(crate) tenant_hosts: Option<Arc<[AllowedHost]>>,
    /// The step's limits.
    pub(crate) limits: Arc<Limits>,
}

impl OperatorPolicy {
    pub(crate) fn new(
        hosts: Vec<AllowedHost>,
        limits: Limits,
        plugins: HashMap<String, PluginPolicy>,
        tenants: HashMap<String, Vec<AllowedHost>>,
    ) -> Result<Self, String> {
        for (name, p) in &plugins {
            if let Some(l) = &p.limits
                && l.memory_bytes > limits.memory_bytes
            {
                return Err(format!(
                    "plugin `{name}`: memory limit {} exceeds the host-wide {} bytes",
                    l.memory_bytes, limits.memory_bytes
                ));
            }
        }
        Ok(Self {
            hosts: hosts.into(),
            limits: Arc::new(limits),
            plugins: plugins
                .into_iter()
                .map(|(name, p)| {
                    (
                        name,
                        (p.allowed_hosts.map(Into::into), p.limits.map(Arc::new)),
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
        let (hosts, limits) = match self.plugins.get(plugin) {
            Some((h, l)) => (
                h.as_ref().unwrap_or(&self.hosts),
                l.as_ref().unwrap_or(&self.limits),
            ),
            None => (&self.hosts, &self.limits),
        };
        Effective {
            hosts: hosts.clone(),
            tenant_hosts: self.tenants.get(tenant).cloned(),
            limits: limits.clone(),
        }
    }
}
