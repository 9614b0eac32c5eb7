//! Set/map element commands and reading elements back from nft's JSON.

use std::borrow::Cow;

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{Element, NfListObject, Nftables};
use nftables::types::NfFamily;

use super::expr::Expr;

/// `elements` of our set or map `name`, to be used with add or delete.
/// For a map each element is `[key, data]` (see [`pair`]).
pub(super) fn element(table: &str, name: &str, elements: Vec<Expr>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::IP,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(name.to_string()),
        elem: Cow::Owned(elements),
    })
}

/// One map element, `key : data`.
pub(super) fn pair(key: Expr, data: Expr) -> Expr {
    Expression::List(vec![key, data])
}

/// The elements of set or map `name` in a `nft -j list ...` answer.
pub(super) fn listed<'a>(doc: &'a Nftables<'static>, name: &str) -> Option<&'a [Expr]> {
    doc.objects.iter().find_map(|obj| match obj {
        nftables::schema::NfObject::ListObject(NfListObject::Set(s)) if s.name == name => {
            Some(s.elem.as_deref().unwrap_or_default())
        }
        nftables::schema::NfObject::ListObject(NfListObject::Map(m)) if m.name == name => {
            Some(m.elem.as_deref().unwrap_or_default())
        }
        _ => None,
    })
}

/// The value of an element, without the `elem` wrapper nft adds when an
/// element carries a comment, counter or timeout.
pub(super) fn value(e: &Expr) -> &Expr {
    match e {
        Expression::Named(NamedExpression::Elem(elem)) => &elem.val,
        other => other,
    }
}

/// The parts of a concatenation.
pub(super) fn parts(e: &Expr) -> Option<&[Expr]> {
    match value(e) {
        Expression::Named(NamedExpression::Concat(parts)) => Some(parts),
        _ => None,
    }
}

pub(super) fn as_str(e: &Expr) -> Option<&str> {
    match value(e) {
        Expression::String(s) => Some(s),
        _ => None,
    }
}

pub(super) fn as_u16(e: &Expr) -> Option<u16> {
    match value(e) {
        Expression::Number(n) => u16::try_from(*n).ok(),
        _ => None,
    }
}
