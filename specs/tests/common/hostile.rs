//! Hostile spec files, shared by `tests/hostile.rs` (which checks each gets a clear
//! diagnostic) and `benches/hostile.rs` (which times them).
#![allow(dead_code)] // The bench uses only part of this module.

/// The largest file Mist reads.
pub const MIB: usize = 1024 * 1024;

/// A hostile file: where it goes in the tree and its bytes.
pub struct Hostile {
    /// A short name for reports.
    pub name: &'static str,
    /// Its path in the spec tree.
    pub path: &'static str,
    /// Its contents.
    pub bytes: Vec<u8>,
}

/// The start of a valid user file for `users/mallory.yaml`, up to `spec:`.
pub const USER_HEAD: &str = "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: mallory\nspec:\n";

/// A real argon2id PHC string (of the password `pw`; it is not a secret).
pub const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bWlzdC1jb3JwdXMtYWxpY2U$xZ9Q0yluP2M98vTWGk7lMx89nYFFIIMvRDlQyeUwOxY";

/// A valid user file for `users/<name>.yaml`.
pub fn user(name: &str) -> String {
    format!(
        "apiVersion: mist/v1\nkind: User\nmetadata:\n  name: {name}\nspec:\n  role: user\n  passwordHash: \"{HASH}\"\n"
    )
}

/// One byte over the size limit.
pub fn oversized() -> Hostile {
    let mut text = user("mallory");
    while text.len() <= MIB {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    text.truncate(MIB + 1);
    Hostile {
        name: "file over 1 MiB",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// "Billion laughs": nine levels of ten aliases each, 10^9 values once expanded.
pub fn billion_laughs() -> Hostile {
    let mut text = String::from(USER_HEAD);
    text.push_str("  displayName: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let p = level - 1;
        text.push_str(&format!("  x{level}: &a{level} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    Hostile {
        name: "billion laughs",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// One anchored list of 1,000 items and 1,000 aliases to it: a million values from 10 KB.
pub fn wide_aliases() -> Hostile {
    let mut text = String::from(USER_HEAD);
    text.push_str("  displayName: &big [");
    text.push_str(&vec!["x"; 1000].join(", "));
    text.push_str("]\n  role: [");
    text.push_str(&vec!["*big"; 1000].join(", "));
    text.push_str("]\n");
    Hostile {
        name: "1,000 aliases of a 1,000-item list",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// 100,000 `[`.
pub fn deep_flow_sequences() -> Hostile {
    Hostile {
        name: "100k nested [",
        path: "users/mallory.yaml",
        bytes: "[".repeat(100_000).into_bytes(),
    }
}

/// 100,000 `{a: `.
pub fn deep_flow_mappings() -> Hostile {
    Hostile {
        name: "100k nested {a:",
        path: "users/mallory.yaml",
        bytes: "{a: ".repeat(100_000).into_bytes(),
    }
}

/// 100,000 nested block sequences on one line: `- - - … x`.
pub fn deep_block_sequences() -> Hostile {
    let mut text = "- ".repeat(100_000);
    text.push_str("x\n");
    Hostile {
        name: "100k nested block sequences",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// Block mappings indented one level per line, as deep as fits in 1 MiB.
pub fn deep_block_mappings() -> Hostile {
    let mut text = String::new();
    let mut level = 0;
    while text.len() + 2 * level + 3 <= MIB {
        text.push_str(&"  ".repeat(level));
        text.push_str("k:\n");
        level += 1;
    }
    Hostile {
        name: "~1,000 nested block mappings",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// Latin-1 `ë` (0xEB) on line 6, column 18.
pub fn invalid_utf8() -> Hostile {
    let mut bytes = USER_HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"  displayName: Zo\xeb\n  role: user\n");
    Hostile {
        name: "invalid UTF-8",
        path: "users/mallory.yaml",
        bytes,
    }
}

/// A NUL byte in the middle of a value on line 6.
pub fn nul_bytes() -> Hostile {
    let mut bytes = USER_HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"  displayName: Mal\0lory\n  role: user\n");
    Hostile {
        name: "NUL byte",
        path: "users/mallory.yaml",
        bytes,
    }
}

/// A terminal escape sequence (ESC, U+001B) on line 6, column 16.
pub fn escape_sequence() -> Hostile {
    let mut bytes = USER_HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"  displayName: \x1b]0;pwned\x07\n  role: user\n");
    Hostile {
        name: "terminal escape sequence",
        path: "users/mallory.yaml",
        bytes,
    }
}

/// A file that is all NUL bytes, just under the size limit.
pub fn all_nul() -> Hostile {
    Hostile {
        name: "1 MiB of NUL",
        path: "users/mallory.yaml",
        bytes: vec![0; MIB],
    }
}

/// A valid user whose `displayName` is one line of almost 1 MiB.
pub fn long_line() -> Hostile {
    let mut text = user("mallory");
    text.push_str("  displayName: ");
    let room = MIB - text.len() - 1;
    text.push_str(&"a".repeat(room));
    text.push('\n');
    Hostile {
        name: "one line of ~1 MiB",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// A line of almost 1 MiB that ends in a syntax error: a `: ` inside a plain scalar.
pub fn long_line_with_error() -> Hostile {
    let mut text = user("mallory");
    text.push_str("  displayName: ");
    let room = MIB - text.len() - 4;
    text.push_str(&"a".repeat(room));
    text.push_str(": b\n");
    Hostile {
        name: "1 MiB line ending in an error",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// A valid user whose `displayName` is a block scalar of almost 1 MiB.
pub fn huge_scalar() -> Hostile {
    let mut text = user("mallory");
    text.push_str("  displayName: |\n");
    let line = format!("    {}\n", "b".repeat(75));
    while text.len() + line.len() <= MIB {
        text.push_str(&line);
    }
    Hostile {
        name: "~1 MiB block scalar",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// A list of as many items as fit in 1 MiB (over 170,000).
pub fn many_items() -> Hostile {
    let mut text = String::from(USER_HEAD);
    text.push_str("  role: user\n  passwordHash: x\n  displayName:\n");
    while text.len() + 6 <= MIB {
        text.push_str("  - x\n");
    }
    Hostile {
        name: "170k list items",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// Just under the node limit of distinct keys, every one an unknown field.
pub fn many_unknown_keys() -> Hostile {
    let mut text = String::from(USER_HEAD);
    for i in 0..9_000 {
        text.push_str(&format!("  field{i}: x\n"));
    }
    Hostile {
        name: "9,000 unknown fields",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// The same key, again and again, until the file is 1 MiB.
pub fn many_duplicate_keys() -> Hostile {
    let mut text = String::from(USER_HEAD);
    while text.len() + 10 <= MIB {
        text.push_str("  role: x\n");
    }
    Hostile {
        name: "100k duplicate keys",
        path: "users/mallory.yaml",
        bytes: text.into_bytes(),
    }
}

/// Every single-file input.
pub fn all() -> Vec<Hostile> {
    vec![
        oversized(),
        billion_laughs(),
        wide_aliases(),
        deep_flow_sequences(),
        deep_flow_mappings(),
        deep_block_sequences(),
        deep_block_mappings(),
        invalid_utf8(),
        nul_bytes(),
        escape_sequence(),
        all_nul(),
        long_line(),
        long_line_with_error(),
        huge_scalar(),
        many_items(),
        many_unknown_keys(),
        many_duplicate_keys(),
    ]
}
