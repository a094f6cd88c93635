//! Just enough of cel-go's type checker for cost estimation: the type of every node, and the
//! overloads a call may resolve to (all of them when an argument is `dyn`, as in cel-go).

use super::decl::{Decl, DeclKind};
use super::overloads::resolve;
use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use std::collections::{BTreeMap, HashMap};

/// A CEL type, as far as costs depend on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty<'a> {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    Null,
    /// A type value such as `int` or `type(x)`.
    Type,
    List(Box<Ty<'a>>),
    Map(Box<Ty<'a>>, Box<Ty<'a>>),
    /// An object of the schema (a message type in CEL).
    Object(&'a BTreeMap<String, Decl>),
    /// A library value without fields (url, quantity, ...).
    Opaque,
    Dyn,
}

impl<'a> Ty<'a> {
    /// The type of values of `decl`.
    pub fn of(decl: &'a Decl) -> Self {
        match &decl.kind {
            DeclKind::Object(fields) => Ty::Object(fields),
            DeclKind::List(items) => Ty::List(Box::new(Ty::of(items))),
            DeclKind::Map(key, value) => Ty::Map(Box::new(Ty::of(key)), Box::new(Ty::of(value))),
            DeclKind::String => Ty::String,
            DeclKind::Bytes => Ty::Bytes,
            DeclKind::Int => Ty::Int,
            DeclKind::Double => Ty::Double,
            DeclKind::Bool => Ty::Bool,
            DeclKind::Duration => Ty::Duration,
            DeclKind::Timestamp => Ty::Timestamp,
            DeclKind::Dyn => Ty::Dyn,
        }
    }

    /// cel-go's `isScalar`: fixed-size values, whose size is 1.
    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Bool | Ty::Double | Ty::Duration | Ty::Int | Ty::Timestamp | Ty::Uint
        )
    }

    /// The element type of a list (`None` for anything else).
    pub fn list_elem(&self) -> Option<&Ty<'a>> {
        match self {
            Ty::List(elem) => Some(elem),
            _ => None,
        }
    }

    /// The type both `self` and `other` have, else `dyn` (as for mixed list literals).
    pub fn join(self, other: &Ty<'a>) -> Ty<'a> {
        if &self == other { self } else { Ty::Dyn }
    }
}

/// The checked expression: node types and call overloads by node id.
#[derive(Debug, Default)]
pub struct Checked<'a> {
    pub types: HashMap<u64, Ty<'a>>,
    pub overloads: HashMap<u64, Vec<String>>,
}

impl<'a> Checked<'a> {
    /// The type of node `id` (`dyn` if unknown).
    pub fn ty(&self, id: u64) -> Ty<'a> {
        self.types.get(&id).cloned().unwrap_or(Ty::Dyn)
    }
}

/// Types `expr`, where `self` and `oldSelf` have the type of `root`.
pub fn check<'a>(expr: &IdedExpr, root: &'a Decl) -> Checked<'a> {
    let mut checker = Checker {
        root,
        scopes: vec![],
        out: Checked::default(),
    };
    checker.check(expr);
    checker.out
}

struct Checker<'a> {
    root: &'a Decl,
    scopes: Vec<(String, Ty<'a>)>,
    out: Checked<'a>,
}

const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

impl<'a> Checker<'a> {
    fn check(&mut self, e: &IdedExpr) -> Ty<'a> {
        let ty = match &e.expr {
            Expr::Unspecified => Ty::Dyn,
            Expr::Literal(lit) => literal_type(lit),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(sel) => {
                let operand = self.check(&sel.operand);
                if sel.test {
                    Ty::Bool
                } else {
                    field_type(&operand, &sel.field)
                }
            }
            Expr::Call(call) => {
                let target = call.target.as_ref().map(|t| self.check(t));
                let args: Vec<Ty<'a>> = call.args.iter().map(|a| self.check(a)).collect();
                let (ids, result) = resolve(&call.func_name, target.as_ref(), &args);
                self.out.overloads.insert(e.id, ids);
                result
            }
            Expr::List(list) => {
                let mut elems = list.elements.iter().map(|el| self.check(el));
                let first = elems.next().unwrap_or(Ty::Dyn);
                Ty::List(Box::new(elems.fold(first, |acc, t| acc.join(&t))))
            }
            Expr::Map(map) => self.map_literal(&map.entries),
            Expr::Struct(st) => {
                for entry in &st.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.check(&f.value);
                    }
                }
                Ty::Dyn
            }
            Expr::Comprehension(comp) => self.comprehension(comp),
        };
        self.out.types.insert(e.id, ty.clone());
        ty
    }

    fn ident(&self, name: &str) -> Ty<'a> {
        if let Some((_, ty)) = self.scopes.iter().rev().find(|(n, _)| n == name) {
            return ty.clone();
        }
        match name {
            "self" | "oldSelf" => Ty::of(self.root),
            n if TYPE_NAMES.contains(&n) => Ty::Type,
            _ => Ty::Dyn,
        }
    }

    fn map_literal(&mut self, entries: &[cel::common::ast::IdedEntryExpr]) -> Ty<'a> {
        let mut kv: Option<(Ty<'a>, Ty<'a>)> = None;
        for entry in entries {
            if let EntryExpr::MapEntry(m) = &entry.expr {
                let (k, v) = (self.check(&m.key), self.check(&m.value));
                kv = Some(match kv {
                    None => (k, v),
                    Some((k0, v0)) => (k0.join(&k), v0.join(&v)),
                });
            }
        }
        let (k, v) = kv.unwrap_or((Ty::Dyn, Ty::Dyn));
        Ty::Map(Box::new(k), Box::new(v))
    }

    fn comprehension(&mut self, comp: &ComprehensionExpr) -> Ty<'a> {
        let range = self.check(&comp.iter_range);
        let accu = self.check(&comp.accu_init);
        let (first, second) = match (&range, comp.iter_var2.is_some()) {
            (Ty::List(elem), false) => ((**elem).clone(), None),
            (Ty::List(elem), true) => (Ty::Int, Some((**elem).clone())),
            (Ty::Map(k, v), two) => ((**k).clone(), two.then(|| (**v).clone())),
            (_, two) => (Ty::Dyn, two.then_some(Ty::Dyn)),
        };
        self.scopes.push((comp.accu_var.clone(), accu));
        let depth = self.scopes.len();
        self.scopes.push((comp.iter_var.clone(), first));
        if let (Some(name), Some(ty)) = (&comp.iter_var2, second) {
            self.scopes.push((name.clone(), ty));
        }
        self.check(&comp.loop_cond);
        let step = self.check(&comp.loop_step);
        self.scopes.truncate(depth);
        // `[]` unifies with what the step builds (map, filter): keep the more precise type.
        if let Some((_, accu)) = self.scopes.last_mut()
            && matches!(step, Ty::List(_) | Ty::Map(..))
            && matches!(accu, Ty::List(_) | Ty::Map(..))
        {
            *accu = step;
        }
        let result = self.check(&comp.result);
        self.scopes.truncate(depth - 1);
        result
    }
}

fn literal_type<'a>(lit: &LiteralValue) -> Ty<'a> {
    match lit {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

/// The type of `operand.field` (`dyn` where kube would not compile the rule).
fn field_type<'a>(operand: &Ty<'a>, field: &str) -> Ty<'a> {
    match operand {
        Ty::Object(fields) => fields.get(field).map_or(Ty::Dyn, Ty::of),
        Ty::Map(_, value) => (**value).clone(),
        _ => Ty::Dyn,
    }
}
