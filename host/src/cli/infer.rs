//! JSON Schema inferred from sample documents, for `courier initialize`:
//! the types seen at each place, the keys every object there had (required),
//! and the elements of arrays merged into one item schema.
//!
//! Written here rather than taken from `genson-rs`, the one Rust crate for
//! it: that crate brings a global allocator (mimalloc), rayon and simd-json
//! for what is, for one API response, a walk of a few hundred nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

/// What has been seen at one place of the samples.
#[derive(Default)]
struct Seen {
    /// JSON Schema type names.
    types: BTreeSet<&'static str>,
    /// Object keys, merged over every object seen here.
    properties: BTreeMap<String, Seen>,
    /// The keys every object seen here had; `None` until an object is seen.
    required: Option<BTreeSet<String>>,
    /// Array elements, merged over every array seen here.
    items: Option<Box<Seen>>,
}

impl Seen {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Null => {
                self.types.insert("null");
            }
            Value::Bool(_) => {
                self.types.insert("boolean");
            }
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                self.types.insert("integer");
            }
            Value::Number(_) => {
                self.types.insert("number");
            }
            Value::String(_) => {
                self.types.insert("string");
            }
            Value::Array(elements) => {
                self.types.insert("array");
                let items = self.items.get_or_insert_with(Box::default);
                for element in elements {
                    items.add(element);
                }
            }
            Value::Object(object) => {
                self.types.insert("object");
                let keys: BTreeSet<String> = object.keys().cloned().collect();
                let required = self.required.get_or_insert_with(|| keys.clone());
                required.retain(|k| keys.contains(k));
                for (key, value) in object {
                    self.properties.entry(key.clone()).or_default().add(value);
                }
            }
        }
    }

    fn schema(&self) -> Value {
        let mut schema = Map::new();
        let mut types: Vec<&str> = self.types.iter().copied().collect();
        if self.types.contains("number") {
            types.retain(|t| *t != "integer");
        }
        match types.as_slice() {
            [] => {}
            [one] => {
                schema.insert("type".into(), (*one).into());
            }
            many => {
                schema.insert("type".into(), many.into());
            }
        }
        if self.types.contains("object") {
            let properties: Map<String, Value> = self
                .properties
                .iter()
                .map(|(k, seen)| (k.clone(), seen.schema()))
                .collect();
            schema.insert("properties".into(), properties.into());
            let required: Vec<&String> = self.required.iter().flatten().collect();
            if !required.is_empty() {
                schema.insert("required".into(), json!(required));
            }
        }
        if let Some(items) = self.items.as_ref().filter(|i| !i.types.is_empty()) {
            schema.insert("items".into(), items.schema());
        }
        schema.into()
    }
}

/// The JSON Schema (draft 2020-12) every sample satisfies, no looser than
/// the samples make it.
pub(crate) fn infer<'a>(samples: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut seen = Seen::default();
    for sample in samples {
        seen.add(sample);
    }
    let mut schema = seen.schema();
    schema
        .as_object_mut()
        .expect("a schema is an object")
        .insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oracle is an independent validator (the `jsonschema` crate).
    fn valid(schema: &Value, value: &Value) -> bool {
        jsonschema::validator_for(schema).unwrap().is_valid(value)
    }

    #[test]
    fn the_schema_holds_every_sample_and_nothing_of_another_type() {
        let sample = json!({
            "id": 17, "name": "Jenny", "score": 4.5, "active": true, "note": null,
            "tags": ["a", "b"], "address": {"city": "Paris", "zip": "75001"}
        });
        let schema = infer([&sample]);
        assert!(valid(&schema, &sample), "{schema}");
        for (pointer, other) in [
            ("/id", json!("17")),
            ("/name", json!(1)),
            ("/active", json!("yes")),
            ("/tags/0", json!(1)),
            ("/address/city", json!(null)),
        ] {
            let mut changed = sample.clone();
            *changed.pointer_mut(pointer).unwrap() = other;
            assert!(!valid(&schema, &changed), "{pointer} changed is refused");
        }
        let mut missing = sample.clone();
        missing["address"].as_object_mut().unwrap().remove("zip");
        assert!(
            !valid(&schema, &missing),
            "a key every sample had is required"
        );
    }

    #[test]
    fn array_elements_merge_and_keys_some_lack_are_optional() {
        let sample = json!({"data": [
            {"id": 1, "email": "a@x.test", "phone": "+33"},
            {"id": 2.5, "email": null}
        ]});
        let schema = infer([&sample]);
        assert!(valid(&schema, &sample), "{schema}");
        let item = &schema["properties"]["data"]["items"];
        assert_eq!(item["required"], json!(["email", "id"]));
        assert_eq!(
            item["properties"]["id"]["type"], "number",
            "integer and number merge"
        );
        assert_eq!(
            item["properties"]["email"]["type"],
            json!(["null", "string"])
        );
        assert!(valid(
            &schema,
            &json!({"data": [{"id": 3, "email": "c@x.test"}]})
        ));
        assert!(!valid(&schema, &json!({"data": [{"email": "c@x.test"}]})));
    }

    #[test]
    fn several_samples_merge_like_array_elements() {
        let (a, b) = (json!({"next": "c2", "items": []}), json!({"items": [1]}));
        let schema = infer([&a, &b]);
        assert!(valid(&schema, &a) && valid(&schema, &b), "{schema}");
        assert_eq!(schema["required"], json!(["items"]));
        assert!(!valid(&schema, &json!({"items": ["x"]})));
    }
}
