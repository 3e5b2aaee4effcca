//! `onprem explain PATH`: a bundle field's documentation, from the JSON
//! Schema the bundle types derive (their doc comments are its
//! descriptions), in the manner of `kubectl explain`.
//!
//! Paths are dotted field names from the bundle's root (`spec.fans.zones`,
//! `spec.fans.zones.controllers.points`); list indices may be written or
//! left out (`zones[0].sensors`). Fields of one variant of a tagged choice
//! (a `pid` controller, a `lm75` device) are found under the choice.

use serde_json::Value;

use super::schema::Bundle;

/// The JSON Schema of a bundle (for editors: `onprem explain --schema`).
pub fn schema() -> Value {
    schemars::schema_for!(Bundle).to_value()
}

/// The text `onprem explain` prints for `path`, or why there is none.
pub fn explain(path: &str) -> Result<String, String> {
    let root = schema();
    let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
    let mut node = root.clone();
    let mut walked = Vec::new();
    for raw in path.split('.').filter(|s| !s.is_empty()) {
        let field = raw.split('[').next().unwrap_or(raw);
        node = descend(&resolve(&node, &defs), field, &defs).ok_or_else(|| {
            let here = if walked.is_empty() {
                "the bundle".to_owned()
            } else {
                walked.join(".")
            };
            let known = fields(&resolve(&node, &defs), &defs)
                .into_iter()
                .map(|(n, _, _)| n)
                .collect::<Vec<_>>()
                .join(", ");
            format!("{here} has no field {field:?} (its fields: {known})")
        })?;
        walked.push(field.to_owned());
    }
    Ok(render(
        if walked.is_empty() {
            "Bundle".into()
        } else {
            walked.join(".")
        },
        &node,
        &defs,
    ))
}

/// Follows `$ref`s and unwraps `Option`-style `anyOf [T, null]`.
fn resolve(node: &Value, defs: &Value) -> Value {
    let mut n = node.clone();
    for _ in 0..16 {
        if let Some(r) = n.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap_or_default();
            let mut target = defs.get(name).cloned().unwrap_or(Value::Null);
            // Keep the referring node's description (the field's own doc).
            if let (Some(d), Some(obj)) = (n.get("description").cloned(), target.as_object_mut()) {
                obj.insert("description".into(), d);
            }
            n = target;
            continue;
        }
        if let Some(any) = n.get("anyOf").and_then(Value::as_array) {
            let non_null: Vec<&Value> = any
                .iter()
                .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 && any.len() == 2 {
                let mut inner = non_null[0].clone();
                if let (Some(d), Some(obj)) = (n.get("description").cloned(), inner.as_object_mut())
                {
                    obj.entry("description").or_insert(d);
                }
                n = inner;
                continue;
            }
        }
        break;
    }
    n
}

/// The child `field` of an object, a list's items, or any variant of a
/// choice.
fn descend(node: &Value, field: &str, defs: &Value) -> Option<Value> {
    if let Some(items) = node.get("items") {
        return descend(&resolve(items, defs), field, defs);
    }
    if let Some(p) = node.get("properties").and_then(|p| p.get(field)) {
        return Some(p.clone());
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(vs) = node.get(key).and_then(Value::as_array) {
            let found: Vec<(Value, Value)> = vs
                .iter()
                .filter_map(|v| {
                    let v = resolve(v, defs);
                    descend(&v, field, defs).map(|f| (v, f))
                })
                .collect();
            // The tag of a tagged choice (`type`, `driver`): one constant
            // per variant, each documented by its variant.
            if found.len() > 1 && found.iter().all(|(_, f)| f.get("const").is_some()) {
                let mut doc = String::from("Which kind this is:\n");
                let mut names = Vec::new();
                for (variant, f) in &found {
                    let c = f.get("const").and_then(Value::as_str).unwrap_or_default();
                    names.push(Value::String(c.to_owned()));
                    let d = first_line(variant.get("description").and_then(Value::as_str));
                    doc.push_str(&format!("  {c}: {d}\n"));
                }
                return Some(serde_json::json!({ "enum": names, "description": doc }));
            }
            if let Some((_, f)) = found.into_iter().next() {
                return Some(f);
            }
        }
    }
    None
}

/// `(name, type, first doc line)` of each child field.
fn fields(node: &Value, defs: &Value) -> Vec<(String, String, String)> {
    let node = match node.get("items") {
        Some(items) => resolve(items, defs),
        None => node.clone(),
    };
    let mut out: Vec<(String, String, String)> = Vec::new();
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (k, v) in props {
            let mut t = label(v, defs);
            if required.contains(&k.as_str()) {
                t.push_str(", required");
            }
            let resolved = resolve(v, defs);
            let doc = first_line(
                v.get("description")
                    .or_else(|| resolved.get("description"))
                    .and_then(Value::as_str),
            );
            out.push((k.clone(), t, doc));
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(vs) = node.get(key).and_then(Value::as_array) {
            for v in vs {
                for f in fields(&resolve(v, defs), defs) {
                    if !out.iter().any(|(n, _, _)| *n == f.0) {
                        out.push(f);
                    }
                }
            }
        }
    }
    out
}

/// The type to show for a field: its type's name where it has one.
fn label(v: &Value, defs: &Value) -> String {
    let r = resolve(v, defs);
    let named = v.get("$ref").and_then(Value::as_str).or_else(|| {
        v.get("anyOf")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find_map(|x| x.get("$ref").and_then(Value::as_str)))
    });
    match named.map(|n| n.rsplit('/').next().unwrap_or_default()) {
        Some("Duration") => "duration".into(),
        Some(n) if r.get("enum").is_none() && r.get("oneOf").is_none() => n.to_owned(),
        _ => type_name(&r),
    }
}

fn first_line(s: Option<&str>) -> String {
    s.unwrap_or_default()
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace('\n', " ")
}

fn type_name(v: &Value) -> String {
    if v.get("oneOf").is_some() || v.get("enum").is_some() {
        let mut names = Vec::new();
        if let Some(e) = v.get("enum").and_then(Value::as_array) {
            names.extend(e.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        for o in v
            .get("oneOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(c) = o.get("const").and_then(Value::as_str) {
                names.push(c.to_owned());
            }
            if let Some(e) = o.get("enum").and_then(Value::as_array) {
                names.extend(e.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            // Internally tagged: the tag's const value.
            if let Some(props) = o.get("properties").and_then(Value::as_object) {
                for p in props.values() {
                    if let Some(c) = p.get("const").and_then(Value::as_str) {
                        names.push(c.to_owned());
                    }
                }
            }
        }
        if !names.is_empty() {
            return format!("one of {}", names.join(" | "));
        }
    }
    match v.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let inner = v.get("items").map_or("any".into(), |i| {
                i.get("$ref")
                    .and_then(Value::as_str)
                    .map(|r| r.rsplit('/').next().unwrap_or_default().to_owned())
                    .unwrap_or_else(|| type_name(i))
            });
            format!("list of {inner}")
        }
        Some(Value::String(t)) if t == "object" && v.get("additionalProperties").is_some() => {
            "map".into()
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => v
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| d.starts_with("A duration"))
            .map_or("object".into(), |_| "duration".into()),
    }
}

fn render(path: String, node: &Value, defs: &Value) -> String {
    let r = resolve(node, defs);
    let mut out = format!("FIELD: {path} <{}>\n", label(node, defs));
    if let Some(d) = node.get("default").or_else(|| r.get("default")) {
        out.push_str(&format!("DEFAULT: {d}\n"));
    }
    let desc = node
        .get("description")
        .or_else(|| r.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("(undocumented)");
    out.push_str("\nDESCRIPTION:\n");
    for line in desc.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    let fields = fields(&r, defs);
    if !fields.is_empty() {
        out.push_str("\nFIELDS:\n");
        let w = fields.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        for (n, t, d) in fields {
            out.push_str(&format!("  {n:<w$}  <{t}>\n  {:<w$}  {d}\n", ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_print_a_fields_doc_and_children() {
        let t = explain("spec.fans.zones").unwrap();
        assert!(
            t.starts_with("FIELD: spec.fans.zones <list of Zone>"),
            "{t}"
        );
        assert!(t.contains("Each fan belongs to at most one zone"), "{t}");
        assert!(t.contains("controllers"), "{t}");
        let t = explain("spec.fans.zones[0].controllers.setpoint").unwrap();
        assert!(t.contains("Target temperature"), "{t}");
        let t = explain("spec.fans.period").unwrap();
        assert!(
            t.contains("<duration>") && t.contains("DEFAULT: \"1s\""),
            "{t}"
        );
        // The hardware spec's own docs come through too.
        let t = explain("spec.hardware.devices.driver").unwrap();
        assert!(t.contains("lm75"), "{t}");
    }

    #[test]
    fn returns_error_listing_the_fields_there_are() {
        let e = explain("spec.fans.zonez").unwrap_err();
        assert!(e.contains("spec.fans has no field \"zonez\""), "{e}");
        assert!(e.contains("zones"), "{e}");
    }

    #[test]
    fn can_document_every_field() {
        // Every property of every type has a description.
        let root = schema();
        let defs = root.get("$defs").cloned().unwrap_or(Value::Null);
        let mut missing = Vec::new();
        let mut stack = vec![("Bundle".to_owned(), root.clone())];
        for (name, d) in defs.as_object().into_iter().flatten() {
            stack.push((name.clone(), d.clone()));
        }
        while let Some((name, node)) = stack.pop() {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    let has = v.get("description").is_some()
                        || v.get("const").is_some()
                        || resolve(v, &defs).get("description").is_some();
                    if !has {
                        missing.push(format!("{name}.{k}"));
                    }
                }
            }
            for key in ["oneOf", "anyOf"] {
                for (i, v) in node
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    stack.push((format!("{name}[{i}]"), v.clone()));
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }
}
