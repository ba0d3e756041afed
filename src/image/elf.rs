//! What an ELF file needs in order to run: its program interpreter (the
//! dynamic loader), DT_NEEDED libraries and their search paths (DT_RPATH,
//! DT_RUNPATH), read with goblin.

use std::fs::File;
use std::io::Read;
use std::path::Path;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Word size, byte order and machine: ld.so only loads a library whose
/// identity matches the program's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    class: u8,
    data: u8,
    machine: u16,
}

/// The dynamic-linking facts of one ELF file.
#[derive(Debug)]
pub(crate) struct Dynamic {
    pub(crate) identity: Identity,
    pub(crate) interpreter: Option<String>,
    pub(crate) needed: Vec<String>,
    pub(crate) rpath: Vec<String>,
    pub(crate) runpath: Vec<String>,
}

pub(crate) fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

/// The identity from an ELF header, or `None` if `head` is not ELF.
fn identity_of(head: &[u8]) -> Option<Identity> {
    if !is_elf(head) || head.len() < 20 {
        return None;
    }
    let data = head[5];
    let machine = [head[18], head[19]];
    Some(Identity {
        class: head[4],
        data,
        machine: if data == 2 {
            u16::from_be_bytes(machine)
        } else {
            u16::from_le_bytes(machine)
        },
    })
}

/// The identity of the ELF file at `path`, reading only its header.
pub(crate) fn identity(path: &Path) -> Option<Identity> {
    let mut head = [0u8; 20];
    File::open(path).ok()?.read_exact(&mut head).ok()?;
    identity_of(&head)
}

/// Parses an ELF file's dynamic section; `Err` says why it is unreadable.
pub(crate) fn dynamic(bytes: &[u8]) -> Result<Dynamic, String> {
    let identity = identity_of(bytes).ok_or("not an ELF file")?;
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| format!("unreadable ELF: {e}"))?;
    let split = |paths: &[&str]| -> Vec<String> {
        paths
            .iter()
            .flat_map(|p| p.split(':'))
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(Dynamic {
        identity,
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|l| l.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_host_program() {
        let bytes = std::fs::read("/bin/ls").unwrap();
        let ls = dynamic(&bytes).unwrap();
        assert!(ls.interpreter.unwrap().contains("ld-linux"));
        assert!(ls.needed.iter().any(|l| l.starts_with("libc.so")));
        assert_eq!(Some(ls.identity), identity(Path::new("/bin/ls")));
        assert!(dynamic(b"#!/bin/sh\n").is_err());
    }
}
