//! Engine specs (TOML) as users write them into `engines_dir`: loading validates or refuses,
//! never panics, and a loaded spec renders its commands from any values.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use stowage::engine::Engine;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(engine) = Engine::from_toml("fuzz", text) {
        let values: BTreeMap<String, String> = engine
            .spec
            .vars
            .keys()
            .map(|k| (k.clone(), format!("{k}-value")))
            .collect();
        for all in [false, true] {
            let _ = engine.dump_invocation(all, &values);
            let _ = engine.dump_invocation(all, &BTreeMap::new());
        }
        let _ = engine.restore_invocation(&values);
        let _ = engine.version_invocation(&values);
    }
});
