//! Every configuration in `config/conformance/` loads and validates, and each reproduces the
//! kernel-side setup its name describes (`<ruleset>-loose<L>-liberal<B>`).

use std::path::Path;

use ctfw_config::Config;
use ctfw_engine::rules::Action;

#[test]
fn every_conformance_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).expect("config/conformance exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 name");
        let (ruleset, knobs) = stem.split_once('-').expect("<ruleset>-loose<L>-liberal<B>");
        assert_eq!(cfg.ports.len(), 2, "{stem}");
        assert_eq!(cfg.port_by_name("inside").map(|p| p.0), Some(0), "{stem}");
        assert_eq!(cfg.port_by_name("outside").map(|p| p.0), Some(1), "{stem}");
        let tcp = &cfg.engine.track.tcp;
        let want = format!(
            "loose{}-liberal{}",
            u8::from(tcp.loose),
            u8::from(tcp.be_liberal)
        );
        assert_eq!(knobs, want, "{stem}: knobs in the name and the file differ");
        assert_eq!(cfg.rules.default_action(), Action::Drop, "{stem}");
        let names: Vec<&str> = cfg.rules.iter().map(|(n, _)| n).collect();
        let tail = ["estrel_accept", "new_c2s_accept", "invalid_drop"];
        match ruleset {
            "classic" => assert_eq!(names, tail, "{stem}"),
            "classic_synchk" => {
                assert_eq!(names[0], "new_not_syn_drop", "{stem}");
                assert_eq!(names[1..], tail, "{stem}");
            }
            other => panic!("{stem}: unknown rule set {other}"),
        }
        loaded += 1;
    }
    assert!(
        loaded >= 2,
        "expected the conformance configs in {}",
        dir.display()
    );
}
