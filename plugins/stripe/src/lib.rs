//! Stripe customers: create (with an idempotency key and `metadata[…]`
//! form fields), retrieve, and list (every page through the host's
//! `starting_after` cursor pagination). The operator's connection holds the
//! secret key; Stripe takes it as a bearer token
//! (<https://docs.stripe.com/api/authentication>).

use std::collections::BTreeMap;

use courier_sdk::prelude::*;

/// The connection the operator binds: one Stripe account's secret key.
const CONNECTION: &str = "stripe";

fn plugin() -> Plugin {
    Plugin::new("stripe", env!("CARGO_PKG_VERSION"))
        .description("Stripe customers")
        .connection(
            Connection::new(CONNECTION)
                .description("A Stripe account: its secret or restricted key as `token`")
                .base_url("https://api.stripe.com")
                .auth(Auth::Bearer)
                // Stripe's documented default limit in live mode
                // (https://docs.stripe.com/rate-limits).
                .rate(100, 1)
                .verify_call("list_customers"),
        )
        .call(create_customer::call())
        .call(retrieve_customer::call())
        .call(list_customers::call())
}

courier_sdk::export!(plugin);

/// `POST /v1/customers` (<https://docs.stripe.com/api/customers/create>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateCustomer {
    /// The customer's email address.
    #[serde(default)]
    email: Option<String>,
    /// The customer's full name or business name.
    #[serde(default)]
    name: Option<String>,
    /// An arbitrary string attached to the customer.
    #[serde(default)]
    description: Option<String>,
    /// The customer's phone number.
    #[serde(default)]
    phone: Option<String>,
    /// Key-value pairs, sent as `metadata[KEY]` form fields.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    /// Sent as `Idempotency-Key`; derive it from the workflow run to make a
    /// re-run of the step create nothing new. A fresh key when absent.
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `GET /v1/customers/{customer}`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RetrieveCustomer {
    /// The customer's id (`cus_…`).
    id: String,
}

/// `GET /v1/customers` (<https://docs.stripe.com/api/customers/list>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListCustomers {
    /// Only customers with exactly this email address.
    #[serde(default)]
    email: Option<String>,
    /// Start after this customer id (the last one a previous list returned).
    #[serde(default)]
    starting_after: Option<String>,
    /// Customers per page, 1 to 100 (default 100).
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 100))]
    page_size: u32,
    /// At most this many pages (the host caps pages and items too).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_pages: Option<u32>,
}

fn default_page_size() -> u32 {
    100
}

/// A customer, as the calls return it.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Customer {
    /// The id (`cus_…`).
    id: String,
    /// The email address.
    email: Option<String>,
    /// The name.
    name: Option<String>,
    /// The description.
    description: Option<String>,
    /// The phone number.
    phone: Option<String>,
    /// Creation time, seconds since the Unix epoch.
    created: i64,
    /// Key-value pairs.
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

/// The customers a list returned.
#[derive(Serialize, JsonSchema)]
struct CustomerList {
    /// Every customer on the pages read, in Stripe's order.
    customers: Vec<Customer>,
    /// Why paging ended: `complete`, or the cap that was reached.
    pagination: String,
}

/// Creates a customer. Sent with an `Idempotency-Key` (the input's, else a
/// fresh one), so a retried request creates it once.
#[call(action, title = "Create customer")]
fn create_customer(input: CreateCustomer) -> Result<Customer, StepError> {
    let key = input.idempotency_key.unwrap_or_else(new_idempotency_key);
    let fields = [
        ("email", input.email),
        ("name", input.name),
        ("description", input.description),
        ("phone", input.phone),
    ];
    let mut form: Vec<(String, String)> = fields
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect();
    form.extend(
        input
            .metadata
            .into_iter()
            .map(|(key, value)| (format!("metadata[{key}]"), value)),
    );
    let request = Request::post("/v1/customers")
        .form(form)
        .idempotency_key(key);
    send(request)
}

/// Retrieves a customer by id.
#[call(data, title = "Retrieve customer")]
fn retrieve_customer(input: RetrieveCustomer) -> Result<Customer, StepError> {
    let id = object_id(&input.id)?;
    send(Request::get(format!("/v1/customers/{id}")))
}

/// Lists customers, newest first, following every page.
#[call(data, title = "List customers")]
fn list_customers(input: ListCustomers) -> Result<CustomerList, StepError> {
    let mut pages = Pagination::cursor("data.-1.id", "starting_after")
        .items("data")
        .page_size("limit", input.page_size);
    if let Some(max) = input.max_pages {
        pages = pages.max_pages(max);
    }
    let mut request = Request::get("/v1/customers").paginate(pages);
    if let Some(email) = input.email {
        request = request.query("email", email);
    }
    if let Some(after) = input.starting_after {
        request = request.query("starting_after", object_id(&after)?);
    }
    let response = checked(request.connection(CONNECTION).send()?)?;
    Ok(CustomerList {
        pagination: response
            .header("courier-pagination")
            .unwrap_or("complete")
            .to_owned(),
        customers: response.json()?,
    })
}

/// Sends `request` on the Stripe connection and reads the object it answers.
fn send<T: serde::de::DeserializeOwned>(request: Request) -> Result<T, StepError> {
    checked(request.connection(CONNECTION).send()?)?.json()
}

/// The response if it is 2xx, else a step error with Stripe's own error
/// type, code and message (<https://docs.stripe.com/api/errors>), and the
/// error object as output.
fn checked(response: Response) -> Result<Response, StepError> {
    if response.is_success() {
        return Ok(response);
    }
    let error = response
        .json::<Value>()
        .ok()
        .and_then(|body| body.get("error").cloned())
        .unwrap_or(Value::Null);
    let text = |field: &str| error.get(field).and_then(Value::as_str);
    let kind: Vec<&str> = ["type", "code"].into_iter().filter_map(text).collect();
    let message = format!(
        "Stripe answered {} ({}): {}",
        response.status(),
        kind.join(", "),
        text("message").unwrap_or("no message")
    );
    Err(StepError::Http {
        status: response.status(),
        message,
        output: Some(json!({ "error": error })),
    })
}

/// An object id as it may appear in a path or cursor: letters, digits and
/// `_` (Stripe's ids are `prefix_` and alphanumerics).
fn object_id(id: &str) -> Result<&str, StepError> {
    let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(StepError::invalid_input(format!(
            "`{id}` is not a Stripe object id"
        )))
    }
}

#[cfg(test)]
mod tests {
    use courier_sdk::testing::{Expect, MockHost, Reply};

    use super::*;

    fn create(input: Value) -> Result<Customer, StepError> {
        create_customer(serde_json::from_value(input).unwrap())
    }

    #[test]
    fn create_sends_metadata_as_bracketed_form_fields_with_the_inputs_key() {
        let host = MockHost::new();
        // The form Stripe documents for `POST /v1/customers`: given fields
        // only, `metadata[KEY]=VALUE` per pair
        // (https://docs.stripe.com/api/metadata).
        host.expect(
            Expect::post("/v1/customers")
                .connection(CONNECTION)
                .form([
                    ("email", "ada@example.test"),
                    ("phone", "+44 20 7946 0000"),
                    ("metadata[order id]", "A&B=1"),
                    ("metadata[plan]", "pro"),
                ])
                .reply(Reply::json(
                    200,
                    json!({"id": "cus_1", "object": "customer", "email": "ada@example.test",
                           "name": null, "description": null, "phone": "+44 20 7946 0000",
                           "created": 1700000000, "metadata": {"plan": "pro", "order id": "A&B=1"}}),
                )),
        );
        let customer = create(json!({
            "email": "ada@example.test", "phone": "+44 20 7946 0000",
            "metadata": {"plan": "pro", "order id": "A&B=1"},
            "idempotency_key": "run-7-step-2"
        }))
        .unwrap();
        assert_eq!(customer.id, "cus_1");
        assert_eq!(customer.metadata["order id"], "A&B=1");
        let sent = host.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].idempotency_key.as_deref(), Some("run-7-step-2"));
    }

    #[test]
    fn create_without_a_key_sends_the_hosts_and_names_stripes_error() {
        let host = MockHost::new();
        host.expect(
            Expect::post("/v1/customers")
                .form([("name", "Ada")])
                .reply(Reply::json(
                    400,
                    json!({"error": {"type": "invalid_request_error", "code": "parameter_unknown",
                                     "message": "Received unknown parameter: nam"}}),
                )),
        );
        let error = create(json!({"name": "Ada"})).err().unwrap();
        let StepError::Http {
            status, message, ..
        } = error
        else {
            panic!("expected an HTTP error, got {error:?}");
        };
        assert_eq!(status, 400);
        assert_eq!(
            message,
            "Stripe answered 400 (invalid_request_error, parameter_unknown): \
             Received unknown parameter: nam"
        );
        let key = host.requests()[0].idempotency_key.clone();
        assert!(key.is_some_and(|k| !k.is_empty() && k != "run-7-step-2"));
    }
}
