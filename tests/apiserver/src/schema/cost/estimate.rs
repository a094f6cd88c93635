//! cel-go's static cost estimator (checker/cost.go, as vendored by kube 1.35) over the `cel`
//! crate's AST, with kube's size estimator: a value's size comes from the schema node its path
//! (`self.spec.items.@items...`) leads to (see [`super::scope`]).

use super::decl::Decl;
use super::range::{EntrySize, Range};
use super::scope::{Local, Role};
use super::types::{Checked, Ty, check};
use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use std::collections::HashMap;

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

/// The state of one estimate: what cel-go's `coster` tracks.
pub struct Coster<'a> {
    pub(super) root: &'a Decl,
    pub(super) checked: Checked<'a>,
    pub(super) paths: HashMap<u64, Vec<String>>,
    pub(super) sizes: HashMap<u64, Range>,
    pub(super) entries: HashMap<u64, EntrySize>,
    pub(super) locals: HashMap<String, Vec<Local>>,
}

/// Presence tests cost nothing in kube (`PresenceTestHasCost(false)`).
const PRESENCE_TEST_COST: u64 = 0;

impl<'a> Coster<'a> {
    fn cost(&mut self, e: &IdedExpr) -> Range {
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
}
