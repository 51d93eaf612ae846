//! The YAML examples in `docs/config.md` are valid configurations.

use std::path::Path;

use ctfw_config::Config;

#[test]
fn documented_examples_load() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let text = std::fs::read_to_string(&doc).expect("docs/config.md");
    let mut examples = 0;
    let mut rest = text.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + "```yaml\n".len()..];
        let end = body.find("```").expect("closed code block");
        let yaml = &body[..end];
        if let Err(e) = Config::from_str(yaml, "docs/config.md example") {
            panic!("{e}\n{yaml}");
        }
        examples += 1;
        rest = &body[end..];
    }
    assert!(examples >= 3, "found {examples} examples");
}
