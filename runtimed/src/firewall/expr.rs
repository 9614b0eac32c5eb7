//! Small builders over the `nftables` crate's typed expressions, so that the
//! rules in `table.rs` read close to nft's own syntax.

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, CT,
};
use nftables::stmt::{JumpTarget, Match, NATFamily, Operator, Statement, NAT};

pub(super) type Expr = Expression<'static>;
pub(super) type Stmt = Statement<'static>;

pub(super) fn string(s: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(s.into()))
}

pub(super) fn number(n: u16) -> Expr {
    Expression::Number(n.into())
}

/// `@name`: a reference to a named set or map of our table.
pub(super) fn set_ref(name: &str) -> Expr {
    string(format!("@{name}"))
}

pub(super) fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

/// `<protocol> <field>`, e.g. `ip saddr` or `th dport`.
pub(super) fn payload(protocol: &'static str, field: &'static str) -> Expr {
    let field = PayloadField { protocol: protocol.into(), field: field.into() };
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(field)))
}

pub(super) fn concat(parts: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Concat(parts))
}

pub(super) fn prefix(addr: std::net::Ipv4Addr, len: u8) -> Expr {
    let prefix = Prefix { addr: Box::new(string(addr.to_string())), len: len.into() };
    Expression::Named(NamedExpression::Prefix(prefix))
}

pub(super) fn ct(key: &'static str) -> Expr {
    Expression::Named(NamedExpression::CT(CT { key: key.into(), family: None, dir: None }))
}

/// `fib daddr type`: the route type of the destination address.
pub(super) fn fib_daddr_type() -> Expr {
    let flags = HashSet::from([FibFlag::Daddr]);
    Expression::Named(NamedExpression::Fib(Fib { result: FibResult::Type, flags }))
}

/// `<key> map @<map>`: an anonymous-key lookup in one of our named maps.
pub(super) fn map_lookup(key: Expr, map: &str) -> Expr {
    Expression::Named(NamedExpression::Map(Box::new(Map { key, data: set_ref(map) })))
}

fn compare(left: Expr, op: Operator, right: Expr) -> Stmt {
    Statement::Match(Match { left, right, op })
}

pub(super) fn eq(left: Expr, right: Expr) -> Stmt {
    compare(left, Operator::EQ, right)
}

pub(super) fn ne(left: Expr, right: Expr) -> Stmt {
    compare(left, Operator::NEQ, right)
}

/// `left in right`, for bitmask values such as `ct state` and `ct status`.
pub(super) fn has(left: Expr, right: Expr) -> Stmt {
    compare(left, Operator::IN, right)
}

pub(super) fn accept() -> Stmt {
    Statement::Accept(None)
}

pub(super) fn drop() -> Stmt {
    Statement::Drop(None)
}

pub(super) fn masquerade() -> Stmt {
    Statement::Masquerade(None)
}

pub(super) fn jump(chain: &str) -> Stmt {
    Statement::Jump(JumpTarget { target: Cow::Owned(chain.to_string()) })
}

/// `dnat ip to <addr> : <port>`.
pub(super) fn dnat(addr: Expr, port: Expr) -> Stmt {
    Statement::DNAT(Some(NAT { addr: Some(addr), family: Some(NATFamily::IP), port: Some(port), flags: None }))
}
