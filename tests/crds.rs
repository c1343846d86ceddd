//! The committed CRD manifests under `manifests/crds/` must equal the ones generated from the Rust
//! types. `make crds` (UPDATE_CRDS=1) rewrites them.

use std::fs;
use std::path::Path;

use infra_operator::api::{crd_yaml, crds};

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/crds");
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    for (file, crd) in crds() {
        let generated = crd_yaml(&crd).expect("CRD serializes");
        let path = dir.join(file);
        if update {
            fs::create_dir_all(&dir).expect("create manifests/crds");
            fs::write(&path, &generated).expect("write CRD");
            continue;
        }
        let committed = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} missing ({e}); run `make crds`", path.display()));
        assert!(
            committed == generated,
            "{} differs from the CRD generated from the Rust types; run `make crds` and commit",
            path.display()
        );
    }
}

#[test]
fn crds_carry_short_names_printer_columns_status_and_limits() {
    let all = crds();
    let (_, role) = all
        .iter()
        .find(|(f, _)| *f == "iamroles.yaml")
        .expect("IAMRole CRD");
    assert_eq!(
        role.spec.names.short_names.as_deref(),
        Some(&["iamr".to_owned()][..])
    );
    let version = &role.spec.versions[0];
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Role Name", "Ready", "ARN", "Age"]);
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let schema = serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["maxSessionDuration"]["minimum"], 3600.0);
    assert_eq!(spec["maxSessionDuration"]["maximum"], 43200.0);
    assert_eq!(spec["roleName"]["maxLength"], 64);
    assert_eq!(spec["managedPolicyArns"]["maxItems"], 20);
    assert_eq!(
        spec["deletionPolicy"]["enum"],
        serde_json::json!(["Delete", "Retain"])
    );

    let (_, provider) = all
        .iter()
        .find(|(f, _)| *f == "awsproviders.yaml")
        .expect("AWSProvider CRD");
    assert_eq!(
        provider.spec.names.short_names.as_deref(),
        Some(&["awsp".to_owned()][..])
    );
}
