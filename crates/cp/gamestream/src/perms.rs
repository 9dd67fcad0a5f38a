//! Per-client permissions: Apollo's bit values (frontier.md §1, what Artemis reads from
//! /serverinfo's `Permission`), the subset strahl enforces.
//!
//! Contract: [`Permissions`] is a `u32` of the bits below; [`Permissions::parse`] takes the
//! operator's comma-separated names (`view,list,keyboard`, or `all` / `none`) and refuses any
//! other word; `Display` writes the names back in table order. What each bit allows and where
//! it is enforced:
//! - `list`: /applist; `view`: /launch and /resume (any stream); `launch`: /launch;
//! - `keyboard`, `mouse`, `controller`, `touch`, `pen`: that kind of input reaches the input
//!   sink (the control plane drops and counts the rest);
//! - `clipboard-read` / `clipboard-set`: GET / POST `/actions/clipboard` and the control
//!   stream's set-clipboard message.
//!
//! The first client to pair gets [`Permissions::ALL`], later ones [`Permissions::DEFAULT_LATER`]
//! (view + list) until the operator grants more (Apollo's rule).

use std::fmt;

/// A set of permission bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Permissions(pub u32);

impl Permissions {
    pub const CONTROLLER: u32 = 0x100;
    pub const TOUCH: u32 = 0x200;
    pub const PEN: u32 = 0x400;
    pub const MOUSE: u32 = 0x800;
    pub const KEYBOARD: u32 = 0x1000;
    pub const CLIPBOARD_SET: u32 = 0x1_0000;
    pub const CLIPBOARD_READ: u32 = 0x2_0000;
    pub const LIST: u32 = 0x100_0000;
    pub const VIEW: u32 = 0x200_0000;
    pub const LAUNCH: u32 = 0x400_0000;

    /// Every bit strahl knows (Apollo's file and server-command bits are not among them:
    /// strahl has neither, so it grants neither).
    pub const ALL: Permissions = Permissions(
        Self::CONTROLLER
            | Self::TOUCH
            | Self::PEN
            | Self::MOUSE
            | Self::KEYBOARD
            | Self::CLIPBOARD_SET
            | Self::CLIPBOARD_READ
            | Self::LIST
            | Self::VIEW
            | Self::LAUNCH,
    );
    /// What a client paired after the first gets.
    pub const DEFAULT_LATER: Permissions = Permissions(Self::VIEW | Self::LIST);
    pub const NONE: Permissions = Permissions(0);

    /// The names, in display order.
    pub const NAMES: [(&'static str, u32); 10] = [
        ("view", Self::VIEW),
        ("list", Self::LIST),
        ("launch", Self::LAUNCH),
        ("keyboard", Self::KEYBOARD),
        ("mouse", Self::MOUSE),
        ("controller", Self::CONTROLLER),
        ("touch", Self::TOUCH),
        ("pen", Self::PEN),
        ("clipboard-read", Self::CLIPBOARD_READ),
        ("clipboard-set", Self::CLIPBOARD_SET),
    ];

    /// Whether every bit of `bits` is set.
    pub fn allows(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    /// Only the bits strahl knows (a stored or Apollo-style value may carry others).
    pub fn known(self) -> Permissions {
        Permissions(self.0 & Self::ALL.0)
    }

    /// The names of the set bits, in display order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(_, b)| self.allows(*b))
            .map(|(n, _)| *n)
            .collect()
    }

    /// Parses `all`, `none`, or comma-separated names (spaces around names are ignored).
    pub fn parse(s: &str) -> Result<Permissions, PermissionsError> {
        let s = s.trim();
        match s {
            "all" => return Ok(Self::ALL),
            "none" | "" => return Ok(Self::NONE),
            _ => {}
        }
        let mut bits = 0;
        for word in s.split(',').map(str::trim) {
            match Self::NAMES.iter().find(|(n, _)| *n == word) {
                Some((_, b)) => bits |= b,
                None => return Err(PermissionsError(word.chars().take(40).collect())),
            }
        }
        Ok(Permissions(bits))
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// An unknown permission name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionsError(pub String);

impl fmt::Display for PermissionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = Permissions::NAMES.iter().map(|(n, _)| *n).collect();
        write!(
            f,
            "unknown permission {:?} (known: all, none, {})",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for PermissionsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apollo_values_names_and_round_trip() {
        // Apollo's values (frontier.md §1).
        assert_eq!(Permissions::DEFAULT_LATER.0, 0x300_0000);
        assert_eq!(Permissions::ALL.0, 0x703_1f00);
        for (name, bit) in Permissions::NAMES {
            assert_eq!(Permissions::parse(name).unwrap().0, bit);
        }
        let p = Permissions::parse(" view, keyboard ,clipboard-read").unwrap();
        assert_eq!(
            p.0,
            Permissions::VIEW | Permissions::KEYBOARD | Permissions::CLIPBOARD_READ
        );
        assert_eq!(p.to_string(), "view,keyboard,clipboard-read");
        assert_eq!(Permissions::parse(&p.to_string()).unwrap(), p);
        assert_eq!(Permissions::parse("all").unwrap(), Permissions::ALL);
        assert_eq!(Permissions::NONE.to_string(), "none");
        let e = Permissions::parse("view,root").unwrap_err();
        assert!(e.to_string().contains("\"root\""), "{e}");
        assert_eq!(Permissions(0xffff_ffff).known(), Permissions::ALL);
    }
}
