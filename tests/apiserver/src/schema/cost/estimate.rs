//! cel-go's static cost estimator (checker/cost.go, as vendored by kube 1.35) over the `cel`
//! crate's AST, with kube's size estimator: a value's size comes from the schema node its path
//! (`self.spec.items.@items...`) leads to.

use super::decl::{Decl, DeclKind};
use super::types::{Checked, Ty, check};
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use std::collections::HashMap;

/// A range of sizes or costs, saturating at `u64::MAX` like cel-go's estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    /// Nothing known: 0 to `u64::MAX`.
    pub const UNKNOWN: Range = Range {
        min: 0,
        max: u64::MAX,
    };

    pub fn fixed(n: u64) -> Self {
        Self { min: n, max: n }
    }

    pub fn add(self, o: Range) -> Self {
        Self {
            min: self.min.saturating_add(o.min),
            max: self.max.saturating_add(o.max),
        }
    }

    pub fn mul(self, o: Range) -> Self {
        Self {
            min: self.min.saturating_mul(o.min),
            max: self.max.saturating_mul(o.max),
        }
    }

    /// cel-go's `MultiplyByCostFactor`: times `f`, rounded up.
    pub fn factor(self, f: f64) -> Self {
        Self {
            min: cost_factor(self.min, f),
            max: cost_factor(self.max, f),
        }
    }

    pub fn union(self, o: Range) -> Self {
        Self {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }
}

fn cost_factor(x: u64, f: f64) -> u64 {
    let xf = x as f64;
    if xf > 0.0 && f > 0.0 && xf > u64::MAX as f64 / f {
        return u64::MAX;
    }
    let ceil = (xf * f).ceil();
    if ceil >= 18_446_744_073_709_551_616.0 {
        u64::MAX
    } else {
        ceil as u64
    }
}

/// Sizes of the keys (or indexes) and values of a list or map built in the expression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntrySize {
    pub list: bool,
    pub key: Range,
    pub val: Range,
}

/// A variable of a comprehension.
#[derive(Debug, Clone)]
struct Local {
    path: Vec<String>,
    size: Option<Range>,
    entry: Option<EntrySize>,
}

/// What an iteration variable holds: the one variable of a comprehension, or the first (key or
/// index) or second (value) of a two-variable one.
#[derive(Debug, Clone, Copy)]
enum Role {
    Single,
    Key,
    Value,
}

/// cel-go's `AstNode`: a call's target or argument as function estimators see it.
#[derive(Debug, Clone)]
pub struct Node<'e, 'a> {
    pub path: Vec<String>,
    pub ty: Ty<'a>,
    pub expr: Option<&'e IdedExpr>,
    pub size: Option<Range>,
}

/// Worst-case cost of one evaluation of `expr` on a value of `root` (kube's `MaxCost`).
pub fn estimate(expr: &IdedExpr, root: &Decl) -> u64 {
    let mut coster = Coster {
        root,
        checked: check(expr, root),
        paths: HashMap::new(),
        sizes: HashMap::new(),
        entries: HashMap::new(),
        locals: HashMap::new(),
    };
    coster.cost(expr).max
}

pub struct Coster<'a> {
    root: &'a Decl,
    checked: Checked<'a>,
    paths: HashMap<u64, Vec<String>>,
    pub(super) sizes: HashMap<u64, Range>,
    pub(super) entries: HashMap<u64, EntrySize>,
    locals: HashMap<String, Vec<Local>>,
}

/// Presence tests cost nothing in kube (`PresenceTestHasCost(false)`).
const PRESENCE_TEST_COST: u64 = 0;

fn is_accumulator(name: &str) -> bool {
    name == "@result" || name == "__result__"
}

impl<'a> Coster<'a> {
    fn cost<'e>(&mut self, e: &'e IdedExpr) -> Range {
        match &e.expr {
            Expr::Unspecified => Range::default(),
            Expr::Literal(_) => Range::fixed(0),
            Expr::Ident(name) => {
                let path = self
                    .local(name)
                    .map_or_else(|| vec![name.clone()], |l| l.path.clone());
                self.paths.insert(e.id, path);
                Range::fixed(1)
            }
            Expr::Select(sel) if sel.test => {
                Range::fixed(PRESENCE_TEST_COST).add(self.cost(&sel.operand))
            }
            Expr::Select(sel) => {
                let mut sum = self.cost(&sel.operand);
                if matches!(self.checked.ty(sel.operand.id), Ty::Map(..) | Ty::Object(_)) {
                    sum = sum.add(Range::fixed(1));
                }
                let mut path = self.path(&sel.operand);
                path.push(sel.field.clone());
                self.paths.insert(e.id, path);
                sum
            }
            Expr::Call(call) => self.cost_call(e, call),
            Expr::List(list) => self.cost_list(e, &list.elements),
            Expr::Map(map) => self.cost_map(e, &map.entries),
            Expr::Struct(st) => (st.entries.iter())
                .filter_map(|en| match &en.expr {
                    EntryExpr::StructField(f) => Some(&f.value),
                    EntryExpr::MapEntry(_) => None,
                })
                .fold(Range::fixed(40), |sum, v| sum.add(self.cost(v))),
            Expr::Comprehension(comp) => self.cost_comprehension(e, comp),
        }
    }

    fn cost_call<'e>(&mut self, e: &'e IdedExpr, call: &'e CallExpr) -> Range {
        if let ("dyn", None, [arg]) = (call.func_name.as_str(), &call.target, call.args.as_slice())
        {
            let cost = self.cost(arg);
            self.copy_sizes(e.id, arg);
            return Range::fixed(1).add(cost);
        }
        let mut arg_costs = vec![];
        let mut args = vec![];
        for arg in &call.args {
            arg_costs.push(self.cost(arg));
            args.push(self.node(arg));
        }
        let mut ids = self
            .checked
            .overloads
            .get(&e.id)
            .cloned()
            .unwrap_or_default();
        if ids.is_empty() {
            // cel-go never gets here (kube would not compile the rule): price it as a plain call.
            ids.push(call.func_name.clone());
        }
        let mut sum = Range::default();
        let target = call.target.as_deref().map(|t| {
            sum = self.cost(t);
            self.node(t)
        });
        let mut fn_cost = Range {
            min: u64::MAX,
            max: 0,
        };
        let mut result: Option<Range> = None;
        for id in &ids {
            let est =
                self.function_cost(e, &call.func_name, id, target.as_ref(), &args, &arg_costs);
            fn_cost = fn_cost.union(est.cost);
            if let Some(size) = est.result {
                result = Some(result.map_or(size, |r| r.union(size)));
            }
            let sub = match id.as_str() {
                "index_list" => "@items",
                "index_map" => "@values",
                _ => "",
            };
            if let (false, Some(container)) = (sub.is_empty(), call.args.first()) {
                result = self.entry_size(container).map(|s| s.val);
                let mut path = self.path(container);
                path.push(sub.to_string());
                self.paths.insert(e.id, path);
            }
            if result.is_none() {
                result = self.size(e);
            }
        }
        if let Some(size) = result {
            self.sizes.insert(e.id, size);
        }
        sum.add(fn_cost)
    }

    fn cost_list(&mut self, e: &IdedExpr, elements: &[IdedExpr]) -> Range {
        let mut sum = Range::default();
        let mut item = Range {
            min: u64::MAX,
            max: 0,
        };
        if elements.is_empty() {
            item.min = 0;
        }
        for el in elements {
            sum = sum.add(self.cost(el));
            item = item.union(self.size(el).unwrap_or(Range::UNKNOWN));
        }
        let entry = EntrySize {
            list: true,
            key: Range::fixed(1),
            val: item,
        };
        self.entries.insert(e.id, entry);
        sum.add(Range::fixed(10))
    }

    fn cost_map(&mut self, e: &IdedExpr, entries: &[cel::common::ast::IdedEntryExpr]) -> Range {
        let mut sum = Range::default();
        let empty = Range {
            min: u64::MAX,
            max: 0,
        };
        let (mut key, mut val) = (empty, empty);
        if entries.is_empty() {
            (key.min, val.min) = (0, 0);
        }
        for entry in entries {
            if let EntryExpr::MapEntry(m) = &entry.expr {
                sum = sum.add(self.cost(&m.key)).add(self.cost(&m.value));
                key = key.union(self.size(&m.key).unwrap_or(Range::UNKNOWN));
                val = val.union(self.size(&m.value).unwrap_or(Range::UNKNOWN));
            }
        }
        let entry = EntrySize {
            list: false,
            key,
            val,
        };
        self.entries.insert(e.id, entry);
        sum.add(Range::fixed(30))
    }

    fn cost_comprehension(&mut self, e: &IdedExpr, comp: &ComprehensionExpr) -> Range {
        let mut sum = self.cost(&comp.iter_range).add(self.cost(&comp.accu_init));
        self.push_var(&comp.accu_var, &comp.accu_init);
        match &comp.iter_var2 {
            Some(second) => {
                self.push_iter(&comp.iter_var, &comp.iter_range, Role::Key);
                self.push_iter(second, &comp.iter_range, Role::Value);
            }
            None => self.push_iter(&comp.iter_var, &comp.iter_range, Role::Single),
        }
        let loop_cost = self.cost(&comp.loop_cond);
        let step_cost = self.cost(&comp.loop_step);
        self.pop(&comp.iter_var);
        if let Some(second) = &comp.iter_var2 {
            self.pop(second);
        }
        sum = sum.add(self.cost(&comp.result));
        self.pop(&comp.accu_var);
        let count = self.size(&comp.iter_range).unwrap_or(Range::UNKNOWN);
        sum = sum.add(count.mul(step_cost.add(loop_cost)));
        match &comp.accu_init.expr {
            Expr::Literal(_) => {
                if let Some(size) = self.size(&comp.accu_init) {
                    self.sizes.insert(e.id, size);
                }
            }
            Expr::List(_) | Expr::Map(_) => {
                self.sizes.insert(e.id, count);
                if let Some(entry) = self.entry_size(&comp.loop_step) {
                    self.entries.insert(e.id, entry);
                }
            }
            _ => {}
        }
        sum
    }

    fn local(&self, name: &str) -> Option<&Local> {
        self.locals.get(name).and_then(|stack| stack.last())
    }

    fn pop(&mut self, name: &str) {
        if let Some(stack) = self.locals.get_mut(name) {
            stack.pop();
        }
    }

    fn push(&mut self, name: &str, local: Local) {
        self.locals.entry(name.to_string()).or_default().push(local);
    }

    /// A bound variable (the accumulator): the path, size and entry sizes of its value.
    fn push_var(&mut self, name: &str, value: &IdedExpr) {
        let local = Local {
            path: self.path(value),
            entry: self.entry_size(value),
            size: self.size(value),
        };
        self.push(name, local);
    }

    /// An iteration variable over `range`, as in cel-go's `pushIterSingle`, `pushIterKey` and
    /// `pushIterValue`: its size and path step depend on whether `range` is a list.
    fn push_iter(&mut self, name: &str, range: &IdedExpr, role: Role) {
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

    fn path(&self, e: &IdedExpr) -> Vec<String> {
        if let Expr::Ident(name) = &e.expr
            && let Some(local) = self.local(name)
        {
            return local.path.clone();
        }
        self.paths.get(&e.id).cloned().unwrap_or_default()
    }

    /// cel-go's `newAstNode`: paths that start at an accumulator are not handed on.
    fn node<'e>(&mut self, e: &'e IdedExpr) -> Node<'e, 'a> {
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

    fn copy_sizes(&mut self, to: u64, from: &IdedExpr) {
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
