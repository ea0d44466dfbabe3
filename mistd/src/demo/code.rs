//! Synthetic executables whose releases change the way real ones do.
//!
//! A [`Program`] is a list of functions made of x86-64-like instructions (prologues,
//! `mov`/`add`/`cmp` with small immediates, short jumps, `E8 rel32` calls to other
//! functions' starts, `lea rdi, [rip+rel32]` loads of strings), a string table and a table
//! of function addresses. Release `n` applies `n` rounds of edits to the original: each
//! round changes a few functions (some instructions replaced, a few inserted), inserts one
//! new function (so everything after it moves and every call and string load across the
//! insertion point gets a new displacement), changes one string and adds another.
//!
//! That is exactly what makes binary deltas of real executables hard for naive diffs and
//! easy for bsdiff-style ones: most bytes are unchanged but shifted, and the changed bytes
//! are displacements that differ by a constant.

use super::rng::Rng;
use super::text;

/// Where the program is loaded, for the absolute addresses in its pointer table.
const BASE_ADDRESS: u64 = 0x0040_0000;
/// Sections start on page boundaries.
const PAGE: usize = 0x1000;
/// Functions start on 16-byte boundaries, padded with `int3`.
const FUNCTION_ALIGN: usize = 16;
/// Functions that many others call, like `memcpy` or `malloc` (the first ids).
const N_HOT_FUNCTIONS: usize = 48;
/// Functions edited in each round.
const N_EDITS_PER_ROUND: usize = 7;
/// Every this many functions has an entry in the pointer table (vtables, callbacks).
const POINTER_TABLE_STRIDE: u32 = 8;

/// The shape of a synthetic program.
pub(crate) struct Program {
    /// Seeds every byte, e.g. `starfall/bin`.
    pub(crate) key: &'static str,
    /// Functions in the original release.
    pub(crate) n_functions: usize,
    /// Strings in the original release, the version string included.
    pub(crate) n_strings: usize,
}

/// One instruction, before layout: calls and string loads are resolved once every
/// function's address is known.
#[derive(Clone)]
enum Insn {
    /// Fixed bytes.
    Raw { len: u8, bytes: [u8; 8] },
    /// `call rel32` to the start of a function, by id.
    Call(u32),
    /// `lea rdi, [rip+rel32]` of a string, by id.
    LoadString(u32),
}

struct Function {
    id: u32,
    /// Bytes reserved for locals: the prologue's `sub rsp, frame`.
    frame: u8,
    body: Vec<Insn>,
}

impl Program {
    /// The bytes of release `release` (0 is the original), with `version_string` as the
    /// first string of the string table.
    pub(crate) fn build(&self, release: usize, version_string: &str) -> Vec<u8> {
        let (functions, strings) = self.contents(release, version_string);
        link(self.key, &functions, &strings)
    }

    /// The functions in layout order and the strings in table order, after `release`
    /// rounds of edits.
    fn contents(
        &self,
        release: usize,
        version_string: &str,
    ) -> (Vec<Function>, Vec<(u32, Vec<u8>)>) {
        let n_base = self.n_functions;
        let mut functions: Vec<Function> = (0..n_base)
            .map(|id| self.base_function(id as u32))
            .collect();
        let mut strings: Vec<(u32, Vec<u8>)> = (0..self.n_strings)
            .map(|id| (id as u32, self.base_string(id as u32)))
            .collect();
        for round in 1..=release {
            let mut rng = Rng::new(&format!("{}/round/{round}", self.key));
            let new_id = (n_base + round - 1) as u32;
            for edit_idx in 0..N_EDITS_PER_ROUND {
                let function_idx = rng.below(functions.len());
                let key = format!("{}/round/{round}/edit/{edit_idx}", self.key);
                self.edit_function(&mut functions[function_idx], &key);
                if edit_idx == 0 {
                    // The new function is called from somewhere, or why add it.
                    let body = &mut functions[function_idx].body;
                    let at = rng.below(body.len() + 1);
                    body.insert(at, Insn::Call(new_id));
                }
            }
            // Not at the very start, so that the change shifts most but not all of the code.
            let at = rng.range(functions.len() / 8, functions.len());
            functions.insert(at, self.base_function(new_id));

            let changed = rng.range(1, strings.len());
            let id = strings[changed].0;
            strings[changed].1 = text::message(&mut Rng::new(&format!(
                "{}/round/{round}/string/{id}",
                self.key
            )));
            let new_string_id = (self.n_strings + round - 1) as u32;
            let at = rng.range(1, strings.len() + 1);
            let new_string = self.base_string(new_string_id);
            strings.insert(at, (new_string_id, new_string));
        }
        strings[0].1 = version_string.as_bytes().to_vec();
        (functions, strings)
    }

    fn base_function(&self, id: u32) -> Function {
        let mut rng = Rng::new(&format!("{}/fn/{id}", self.key));
        // Most functions are short; a few are long.
        let mut n_insns = 6 + rng.below(30);
        if rng.chance(1, 5) {
            n_insns += rng.below(200);
        }
        let frame = (8 * rng.range(1, 16)) as u8;
        let body = (0..n_insns)
            .map(|_| self.random_insn(&mut rng, id, frame))
            .collect();
        Function { id, frame, body }
    }

    /// A small change: a few instructions replaced, a few inserted, maybe one removed.
    fn edit_function(&self, function: &mut Function, key: &str) {
        let mut rng = Rng::new(key);
        let frame = function.frame;
        for _ in 0..rng.range(1, 4) {
            let at = rng.below(function.body.len());
            function.body[at] = self.random_insn(&mut rng, function.id, frame);
        }
        let at = rng.below(function.body.len() + 1);
        for _ in 0..rng.range(1, 5) {
            let insn = self.random_insn(&mut rng, function.id, frame);
            function.body.insert(at, insn);
        }
        if rng.chance(3, 10) && function.body.len() > 2 {
            let at = rng.below(function.body.len());
            function.body.remove(at);
        }
    }

    fn base_string(&self, id: u32) -> Vec<u8> {
        text::message(&mut Rng::new(&format!("{}/string/{id}", self.key)))
    }

    fn random_insn(&self, rng: &mut Rng, self_id: u32, frame: u8) -> Insn {
        let reg = rng.below(8) as u8;
        let reg2 = rng.below(8) as u8;
        // A local variable: [rbp - 8k] as a negative disp8.
        let local = (256 - 8 * rng.range(1, usize::from(frame / 8) + 1)) as u8;
        let imm: u32 = if rng.chance(7, 10) {
            rng.below(512) as u32
        } else {
            rng.next_u64() as u32
        };
        let raw = |bytes: &[u8]| {
            let mut buf = [0; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            Insn::Raw {
                len: bytes.len() as u8,
                bytes: buf,
            }
        };
        match rng.below(100) {
            // mov [rbp-x], reg
            0..=13 => raw(&[0x48, 0x89, 0x45 | reg << 3, local]),
            // mov reg, [rbp-x]
            14..=27 => raw(&[0x48, 0x8B, 0x45 | reg << 3, local]),
            // mov r32, imm32
            28..=37 => {
                let b = imm.to_le_bytes();
                raw(&[0xB8 + reg, b[0], b[1], b[2], b[3]])
            }
            // add or sub reg, imm8
            38..=45 => {
                let op = if rng.chance(1, 2) { 0xC0 } else { 0xE8 };
                raw(&[0x48, 0x83, op | reg, (imm & 0x7F) as u8])
            }
            // cmp reg, reg / test reg, reg
            46..=53 => {
                let op = if rng.chance(1, 2) { 0x39 } else { 0x85 };
                raw(&[0x48, op, 0xC0 | reg2 << 3 | reg])
            }
            // jcc rel8
            54..=62 => raw(&[0x70 + rng.below(16) as u8, rng.range(4, 0x60) as u8]),
            // mov reg, reg
            63..=68 => raw(&[0x48, 0x89, 0xC0 | reg2 << 3 | reg]),
            // xor r32, r32
            69..=71 => raw(&[0x31, 0xC0 | reg << 3 | reg]),
            // movzx eax, byte [rbp-x]
            72..=74 => raw(&[0x0F, 0xB6, 0x45 | reg << 3, local]),
            // nop dword [rax+rax]
            75..=76 => raw(&[0x0F, 0x1F, 0x44, 0x00, 0x00]),
            // call rax
            77..=78 => raw(&[0xFF, 0xD0 | reg]),
            // call a function
            79..=91 => Insn::Call(self.call_target(rng, self_id)),
            // load a string
            _ => Insn::LoadString(rng.range(1, self.n_strings) as u32),
        }
    }

    /// Callees are often hot helpers or neighbours in the same source file.
    fn call_target(&self, rng: &mut Rng, self_id: u32) -> u32 {
        let n = self.n_functions;
        match rng.below(100) {
            0..=24 => rng.below(N_HOT_FUNCTIONS.min(n)) as u32,
            25..=69 => {
                let near = self_id as usize + rng.below(81);
                (near.saturating_sub(40)).min(n - 1) as u32
            }
            _ => rng.below(n) as u32,
        }
    }
}

/// Lays the program out and resolves calls and string loads:
/// header | .text | .rodata (strings) | .data (pointer table).
fn link(key: &str, functions: &[Function], strings: &[(u32, Vec<u8>)]) -> Vec<u8> {
    const PROLOGUE_LEN: usize = 8;
    const EPILOGUE_LEN: usize = 2;
    let text_start = PAGE;
    let mut function_offsets = std::collections::HashMap::with_capacity(functions.len());
    let mut offset = text_start;
    for function in functions {
        function_offsets.insert(function.id, offset);
        let len = PROLOGUE_LEN + function.body.iter().map(insn_len).sum::<usize>() + EPILOGUE_LEN;
        offset = (offset + len).next_multiple_of(FUNCTION_ALIGN);
    }
    let text_end = offset;
    let rodata_start = text_end.next_multiple_of(PAGE);
    let mut string_offsets = std::collections::HashMap::with_capacity(strings.len());
    let mut offset = rodata_start;
    for (id, string) in strings {
        string_offsets.insert(*id, offset);
        offset += string.len() + 1;
    }
    let rodata_end = offset;
    let data_start = rodata_end.next_multiple_of(PAGE);
    let mut out = vec![0u8; data_start];

    for function in functions {
        let mut at = function_offsets[&function.id];
        let prologue = [0x55, 0x48, 0x89, 0xE5, 0x48, 0x83, 0xEC, function.frame];
        out[at..at + PROLOGUE_LEN].copy_from_slice(&prologue);
        at += PROLOGUE_LEN;
        for insn in &function.body {
            match insn {
                Insn::Raw { len, bytes } => {
                    let len = usize::from(*len);
                    out[at..at + len].copy_from_slice(&bytes[..len]);
                    at += len;
                }
                Insn::Call(target) => {
                    let next = at + 5;
                    let rel = function_offsets[target] as i64 - next as i64;
                    out[at] = 0xE8;
                    out[at + 1..next].copy_from_slice(&(rel as i32).to_le_bytes());
                    at = next;
                }
                Insn::LoadString(id) => {
                    let next = at + 7;
                    let target = string_offsets[id];
                    let rel = target as i64 - next as i64;
                    out[at..at + 3].copy_from_slice(&[0x48, 0x8D, 0x3D]);
                    out[at + 3..next].copy_from_slice(&(rel as i32).to_le_bytes());
                    at = next;
                }
            }
        }
        out[at..at + EPILOGUE_LEN].copy_from_slice(&[0xC9, 0xC3]);
        at += EPILOGUE_LEN;
        let padded = at.next_multiple_of(FUNCTION_ALIGN);
        out[at..padded].fill(0xCC);
    }
    for (id, string) in strings {
        let at = string_offsets[id];
        out[at..at + string.len()].copy_from_slice(string);
    }
    for function in functions {
        if function.id % POINTER_TABLE_STRIDE == 0 {
            let address = BASE_ADDRESS + function_offsets[&function.id] as u64;
            out.extend_from_slice(&address.to_le_bytes());
        }
    }
    let data_end = out.len();

    // The header last, since it records where everything is. The build id is a hash of
    // the rest, so it changes with every build, as a real one does.
    let build_id = super::rng::fnv1a64(&out[text_start..]);
    let mut header = Vec::with_capacity(256);
    header.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&2u16.to_le_bytes()); // e_type: executable
    header.extend_from_slice(&0x3Eu16.to_le_bytes()); // e_machine: x86-64
    header.extend_from_slice(&1u32.to_le_bytes());
    let entry = BASE_ADDRESS + function_offsets.get(&0).copied().unwrap_or(text_start) as u64;
    header.extend_from_slice(&entry.to_le_bytes());
    for (start, end) in [
        (text_start, text_end),
        (rodata_start, rodata_end),
        (data_start, data_end),
    ] {
        header.extend_from_slice(&(start as u64).to_le_bytes());
        header.extend_from_slice(&((end - start) as u64).to_le_bytes());
    }
    header.extend_from_slice(b"GNU\0");
    let mut id_rng = Rng::new(&format!("{key}/build-id/{build_id:016x}"));
    let mut id = [0u8; 20];
    id_rng.fill(&mut id);
    header.extend_from_slice(&id);
    out[..header.len()].copy_from_slice(&header);
    out
}

fn insn_len(insn: &Insn) -> usize {
    match insn {
        Insn::Raw { len, .. } => usize::from(*len),
        Insn::Call(_) => 5,
        Insn::LoadString(_) => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Program = Program {
        key: "test/code",
        n_functions: 300,
        n_strings: 50,
    };

    #[test]
    fn same_release_same_bytes() {
        assert_eq!(SMALL.build(2, "v2"), SMALL.build(2, "v2"));
    }

    #[test]
    fn calls_land_on_function_starts() {
        let bytes = SMALL.build(1, "v1");
        // Every function starts with the prologue `push rbp; mov rbp, rsp`.
        let text_len = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let text = PAGE..PAGE + text_len;
        let mut n_calls = 0;
        let mut at = text.start;
        while at + 5 <= text.end {
            if bytes[at] == 0xE8 {
                let rel = i32::from_le_bytes(bytes[at + 1..at + 5].try_into().unwrap());
                let target = (at as i64 + 5 + i64::from(rel)) as usize;
                if text.contains(&target) && bytes[target..target + 4] == [0x55, 0x48, 0x89, 0xE5] {
                    n_calls += 1;
                }
            }
            at += 1;
        }
        assert!(
            n_calls > 300,
            "only {n_calls} calls resolve to function starts"
        );
    }

    #[test]
    fn a_release_grows_by_about_one_function() {
        let v0 = SMALL.build(0, "v0");
        let v1 = SMALL.build(1, "v1");
        assert_ne!(v0, v1);
        let text_len = |b: &[u8]| u64::from_le_bytes(b[40..48].try_into().unwrap());
        assert!(text_len(&v1) > text_len(&v0));
    }
}
