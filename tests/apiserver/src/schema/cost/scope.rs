//! Where values come from, for their sizes: the paths of nodes (`self.spec.@items`), the
//! comprehension variables in scope, and kube's size estimator that follows a path through the
//! schema's declarations (`sizeEstimator` in apiextensions' `schema/cel/compilation.go`).

use super::decl::DeclKind;
use super::estimate::Coster;
use super::range::{EntrySize, Node, Range};
use super::types::Ty;
use cel::common::ast::{Expr, IdedExpr, LiteralValue};

/// A variable of a comprehension.
#[derive(Debug, Clone)]
pub struct Local {
    pub path: Vec<String>,
    pub size: Option<Range>,
    pub entry: Option<EntrySize>,
}

/// What an iteration variable holds: the one variable of a comprehension, or the first (key or
/// index) or second (value) of a two-variable one.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Single,
    Key,
    Value,
}

fn is_accumulator(name: &str) -> bool {
    name == "@result" || name == "__result__"
}

impl<'a> Coster<'a> {
    pub(super) fn local(&self, name: &str) -> Option<&Local> {
        self.locals.get(name).and_then(|stack| stack.last())
    }

    pub(super) fn pop(&mut self, name: &str) {
        if let Some(stack) = self.locals.get_mut(name) {
            stack.pop();
        }
    }

    fn push(&mut self, name: &str, local: Local) {
        self.locals.entry(name.to_string()).or_default().push(local);
    }

    /// A bound variable (the accumulator): the path, size and entry sizes of its value.
    pub(super) fn push_var(&mut self, name: &str, value: &IdedExpr) {
        let local = Local {
            path: self.path(value),
            entry: self.entry_size(value),
            size: self.size(value),
        };
        self.push(name, local);
    }

    /// An iteration variable over `range`, as in cel-go's `pushIterSingle`, `pushIterKey` and
    /// `pushIterValue`: its size and path step depend on whether `range` is a list.
    pub(super) fn push_iter(&mut self, name: &str, range: &IdedExpr, role: Role) {
        let entry = self.entry_size(range);
        let list = entry.map_or_else(
            || matches!(self.checked.ty(range.id), Ty::List(_)),
            |e| e.list,
        );
        let key = entry.map(|e| e.key);
        let val = entry.map(|e| e.val);
        let (size, step) = match (role, list) {
            (Role::Single, true) | (Role::Value, true) => (val, "@items"),
            (Role::Single, false) | (Role::Key, false) => (key, "@keys"),
            (Role::Key, true) => (key, "@indices"),
            (Role::Value, false) => (val, "@values"),
        };
        let mut path = self.path(range);
        path.push(step.to_string());
        self.push(
            name,
            Local {
                path,
                size,
                entry: None,
            },
        );
    }

    pub(super) fn path(&self, e: &IdedExpr) -> Vec<String> {
        if let Expr::Ident(name) = &e.expr
            && let Some(local) = self.local(name)
        {
            return local.path.clone();
        }
        self.paths.get(&e.id).cloned().unwrap_or_default()
    }

    /// cel-go's `newAstNode`: paths that start at an accumulator are not handed on.
    pub(super) fn node<'e>(&mut self, e: &'e IdedExpr) -> Node<'e, 'a> {
        let mut path = self.path(e);
        if path.first().is_some_and(|p| is_accumulator(p)) {
            path.clear();
        }
        Node {
            path,
            ty: self.checked.ty(e.id),
            expr: Some(e),
            size: self.size(e),
        }
    }

    pub(super) fn copy_sizes(&mut self, to: u64, from: &IdedExpr) {
        if let Some(size) = self.size(from) {
            self.sizes.insert(to, size);
        }
        if let Some(entry) = self.entry_size(from) {
            self.entries.insert(to, entry);
        }
    }

    /// cel-go's `computeSize`: computed, literal, schema, scalar, then variable sizes.
    pub(super) fn size(&mut self, e: &IdedExpr) -> Option<Range> {
        if let Some(size) = self.sizes.get(&e.id) {
            return Some(*size);
        }
        if let Some(size) = literal_size(e) {
            return Some(size);
        }
        if let Some(size) = self.schema_size(&self.path(e)) {
            self.sizes.insert(e.id, size);
            return Some(size);
        }
        if self.checked.ty(e.id).is_scalar() {
            return Some(Range::fixed(1));
        }
        match &e.expr {
            Expr::Ident(name) => self.local(name).and_then(|l| l.size),
            _ => None,
        }
    }

    pub(super) fn entry_size(&self, e: &IdedExpr) -> Option<EntrySize> {
        if let Some(entry) = self.entries.get(&e.id) {
            return Some(*entry);
        }
        match &e.expr {
            Expr::Ident(name) => self.local(name).and_then(|l| l.entry),
            _ => None,
        }
    }

    /// kube's `sizeEstimator.EstimateSize`: follows `path` (its first element, the variable,
    /// always stands for the rule's own node) through the declarations to `MaxElements`.
    pub(super) fn schema_size(&self, path: &[String]) -> Option<Range> {
        let (_, steps) = path.split_first()?;
        let mut node = self.root;
        for step in steps {
            node = match (step.as_str(), &node.kind) {
                ("@items" | "@values", DeclKind::List(elem) | DeclKind::Map(_, elem)) => elem,
                ("@keys", DeclKind::Map(key, _)) => key,
                (field, DeclKind::Object(fields)) => fields.get(field)?,
                _ => return None,
            };
        }
        Some(Range {
            min: 0,
            max: node.max_elements,
        })
    }
}

/// cel-go's `computeExprSize`: sizes CEL knows from the expression itself.
fn literal_size(e: &IdedExpr) -> Option<Range> {
    let n = match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => s.inner().chars().count(),
        Expr::Literal(LiteralValue::Bytes(b)) => b.inner().len(),
        Expr::Literal(_) => 1,
        Expr::List(list) => list.elements.len(),
        Expr::Map(map) => map.entries.len(),
        _ => return None,
    };
    Some(Range::fixed(n as u64))
}
