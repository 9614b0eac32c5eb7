//! The structure of our table (sets, maps, chains, rules) as nft reports
//! it, without elements and handles.
//!
//! Read once right after [`Firewall::ensure`] wrote it, it is the reference
//! a later reading is compared with: rules come back from the kernel in
//! nft's own normal form, which is easier to compare with itself than with
//! what we sent. Only objects of ours are compared, so a chain someone adds
//! to our table does not make every check fail.
//!
//! [`Firewall::ensure`]: super::Firewall::ensure

use nftables::schema::{NfListObject, NfObject, Nftables};

use super::table::{CHAINS, SETS};

/// Our table's declarations and rules, in listing order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape(Vec<NfListObject<'static>>);

impl Shape {
    /// The shape of our table in a `nft -j list table` answer.
    pub(super) fn of(doc: &Nftables<'static>) -> Shape {
        Shape(doc.objects.iter().filter_map(ours).collect())
    }
}

/// A copy of `obj` without handle and elements, if it is one of ours.
fn ours(obj: &NfObject<'static>) -> Option<NfListObject<'static>> {
    let NfObject::ListObject(obj) = obj else {
        return None;
    };
    Some(match obj.clone() {
        NfListObject::Table(t) => NfListObject::Table(nftables::schema::Table { handle: None, ..t }),
        NfListObject::Chain(c) if CHAINS.contains(&&*c.name) => {
            NfListObject::Chain(nftables::schema::Chain { handle: None, ..c })
        }
        NfListObject::Rule(r) if CHAINS.contains(&&*r.chain) => {
            NfListObject::Rule(nftables::schema::Rule { handle: None, ..r })
        }
        NfListObject::Set(mut s) if SETS.contains(&&*s.name) => {
            (s.handle, s.elem) = (None, None);
            NfListObject::Set(s)
        }
        NfListObject::Map(mut m) if SETS.contains(&&*m.name) => {
            (m.handle, m.elem) = (None, None);
            NfListObject::Map(m)
        }
        _ => return None,
    })
}
