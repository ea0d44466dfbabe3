#[test]
fn scratch() {
    let base = std::path::Path::new("/tmp/mdtest/demo/nas/incoming");
    for (a, b) in [("tidewater/0.9.0/data/assets.pak", "tidewater/1.0.0/data/assets.pak"), ("starfall/1.0.0/bin/starfall", "starfall/1.0.1/bin/starfall")] {
        let old = std::fs::read(base.join(a)).unwrap();
        let new = std::fs::read(base.join(b)).unwrap();
        for (name, options) in [("fast", mist_games::filedelta::DiffOptions { zstd_level: 3, lzma_preset: None, ..Default::default() }), ("default", Default::default())] {
            let t = std::time::Instant::now();
            let delta = mist_games::filedelta::diff(&old, &new, &options).unwrap();
            println!("{b} {name}: {} bytes in {:?}", delta.len(), t.elapsed());
            for s in mist_games::filedelta::streams(&delta).unwrap() { println!("  {s:?}"); }
        }
    }
}
