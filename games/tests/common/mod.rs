//! Random file trees for the property tests: a model of a tree, a proptest strategy that
//! builds one from random paths and nodes, and the tree made on disk.
#![allow(dead_code)] // Each test file uses a different part of this module.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use proptest::prelude::*;

/// What one path of a generated tree is.
#[derive(Clone, Debug)]
pub enum Node {
    File { contents: Vec<u8>, executable: bool },
    Dir,
    Link { target: String },
}

/// A tree as the manifest should see it: manifest path -> node, parents included.
pub type Model = BTreeMap<String, Node>;

/// Random trees of up to three levels of `names`, with up to `n_nodes` random `node`s.
/// Entries whose path clashes with an earlier one (same path, or a parent that is not a
/// directory) are dropped, and a file at the top makes sure no tree is empty.
pub fn tree(
    names: &'static [&'static str],
    node: impl Strategy<Value = Node>,
    n_nodes: std::ops::Range<usize>,
) -> impl Strategy<Value = Model> {
    let path = prop::collection::vec(prop::sample::select(names), 1..=3);
    prop::collection::vec((path, node), n_nodes).prop_map(|nodes| {
        let mut model = Model::new();
        model.insert(
            "anchor".to_owned(),
            Node::File {
                contents: b"anchor".to_vec(),
                executable: false,
            },
        );
        'nodes: for (components, node) in nodes {
            for depth in 1..components.len() {
                let parent = components[..depth].join("/");
                match model.get(&parent) {
                    None => {
                        model.insert(parent, Node::Dir);
                    }
                    Some(Node::Dir) => {}
                    Some(_) => continue 'nodes,
                }
            }
            model.entry(components.join("/")).or_insert(node);
        }
        model
    })
}

/// Creates the model under `root`, in the model's order or reversed.
pub fn materialize(root: &Path, model: &Model, reverse: bool) {
    fs::create_dir_all(root).unwrap();
    let mut nodes: Vec<(&String, &Node)> = model.iter().collect();
    if reverse {
        nodes.reverse();
    }
    for (rel, node) in nodes {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        match node {
            Node::File {
                contents,
                executable,
            } => {
                fs::write(&path, contents).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Dir => fs::create_dir_all(&path).unwrap(),
            Node::Link { target } => symlink(target, &path).unwrap(),
        }
    }
}
