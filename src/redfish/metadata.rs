//! `$metadata`: the OData CSDL document that names every schema the
//! service uses, so that a client (or the DMTF validator, when it is
//! asked to) can resolve each `@odata.type`.

use super::resources::SCHEMAS;

/// The schema files a namespace lives in (`ComputerSystem` →
/// `ComputerSystem_v1.xml`).
pub fn file_of(ns: &str) -> String {
    format!("{ns}_v1.xml")
}

/// The `$metadata` document: one `edmx:Reference` per schema file, an
/// `edmx:Include` for the unversioned namespace and the versioned one of
/// each served type, and the service container.
pub fn document() -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    let mut refs: Vec<(&str, &str)> = SCHEMAS.to_vec();
    // Types every resource uses.
    refs.push(("Resource", ""));
    refs.push(("RedfishExtensions", "v1_0_0"));
    for (ns, v) in refs {
        out.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{}\">\n    <edmx:Include Namespace=\"{ns}\"/>\n",
            file_of(ns)
        ));
        if !v.is_empty() {
            out.push_str(&format!("    <edmx:Include Namespace=\"{ns}.{v}\"/>\n"));
        }
        out.push_str("  </edmx:Reference>\n");
    }
    let root_version = SCHEMAS
        .iter()
        .find(|(n, _)| *n == "ServiceRoot")
        .map_or("v1_0_0", |(_, v)| v);
    out.push_str(&format!(
        "  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.{root_version}.ServiceContainer\"/>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_served_namespace() {
        let d = document();
        for (ns, v) in SCHEMAS {
            assert!(
                d.contains(&format!("<edmx:Include Namespace=\"{ns}\"/>")),
                "{ns}"
            );
            if !v.is_empty() {
                assert!(d.contains(&format!("Namespace=\"{ns}.{v}\"")), "{ns}.{v}");
            }
            assert!(d.contains(&file_of(ns)));
        }
        assert!(d.contains("Extends=\"ServiceRoot.v1_20_0.ServiceContainer\""));
    }

    /// Every schema file and versioned namespace the document names is in
    /// the DMTF schema set the tests validate against.
    #[test]
    fn every_reference_exists_in_the_schema_set() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redfish/csdl");
        for (ns, v) in SCHEMAS {
            let path = dir.join(file_of(ns));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !v.is_empty() {
                assert!(
                    text.contains(&format!("Namespace=\"{ns}.{v}\"")),
                    "{ns}.{v} is not in {}",
                    path.display()
                );
            }
        }
    }
}
