//! `expect.cel`: one CEL expression over the response, compiled once at validation. The `cel`
//! crate has no cost limit, cancellation or type checker, so the bounds are built here: the
//! expression's length, its syntax tree's depth (also the parser's recursion limit) and how
//! deeply comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`) nest, since
//! each level multiplies the work by the input's size. Every comprehension is instrumented
//! with a call to [`TICK`] on each iteration, which the evaluator binds to its deadline: that
//! is the cancellation the crate lacks. Every step that can make a new value (a call, a list or
//! map literal, a comprehension, and each element a literal copies) hands its value through
//! [`METER`], where the evaluator charges what the expression holds so far to the body budget:
//! the crate deep-copies values a literal or `map` takes in, so `[body, body, ...]` would
//! otherwise grow without bound until the deadline.

use cel::common::ast::{CallExpr, ComprehensionExpr, Expr, IdedExpr, operators};
use cel::parser::{ParseErrors, Parser};

use super::validate::FieldError;

/// Longest expression, in bytes (also the schema's maxLength).
pub const MAX_CEL_BYTES: usize = 2048;
/// Deepest syntax tree, macros expanded (and the parser's recursion limit).
pub const MAX_CEL_DEPTH: usize = 32;
/// Most comprehensions nested in one another's loop: two already make the cost quadratic in
/// the size of the body.
pub const MAX_CEL_LOOPS: usize = 2;
/// The function every comprehension calls on each iteration, with a value it hands back.
/// `@` cannot be written in CEL source, so an expression cannot call or shadow it.
pub const TICK: &str = "@canary_tick";
/// The function every value-making step hands its value through (see the module's doc).
pub const METER: &str = "@canary_meter";

const FIELD: &str = "spec.http.expect.cel";

/// A validated, instrumented expression.
#[derive(Debug)]
pub struct CelExpression {
    /// The expression as written, for messages.
    pub text: String,
    /// The syntax tree, macros expanded and each comprehension calling [`TICK`].
    pub expr: IdedExpr,
}

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    #[error("{0} bytes exceed the limit of {MAX_CEL_BYTES}")]
    TooLong(usize),
    #[error("must not be empty")]
    Empty,
    #[error("syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: isize,
        column: isize,
        message: String,
    },
    #[error("nested deeper than {MAX_CEL_DEPTH} levels")]
    TooDeep,
    #[error(
        "comprehensions (all, exists, exists_one, map, filter) nested more than {MAX_CEL_LOOPS} deep: each level multiplies the cost by the size of the body"
    )]
    TooManyLoops,
    /// The parser's thread could not run (out of threads or memory).
    #[error("could not be compiled: {0}")]
    Thread(String),
}

impl From<CelError> for FieldError {
    fn from(error: CelError) -> Self {
        FieldError {
            field: FIELD.into(),
            message: error.to_string(),
        }
    }
}

/// Validates and compiles `spec.http.expect.cel`.
pub(super) fn validate_cel(text: &str) -> Result<CelExpression, FieldError> {
    Ok(compile(text)?)
}

/// Parses `text` within the bounds and instruments its comprehensions.
pub fn compile(text: &str) -> Result<CelExpression, CelError> {
    if text.len() > MAX_CEL_BYTES {
        return Err(CelError::TooLong(text.len()));
    }
    if text.trim().is_empty() {
        return Err(CelError::Empty);
    }
    let mut expr = on_big_stack(|| {
        let depth = u16::try_from(MAX_CEL_DEPTH).unwrap_or(u16::MAX);
        let (expr, _) = Parser::new()
            .max_recursion_depth(depth)
            .parse_with_source_info(text)
            .map_err(syntax)?;
        measure(&expr, 1, 0)?;
        Ok(expr)
    })?;
    let mut next_id = u64::MAX;
    instrument(&mut expr, &mut next_id);
    meter(&mut expr, &mut next_id);
    Ok(CelExpression {
        text: text.to_owned(),
        expr,
    })
}

/// Stack for parsing: the generated parser spends ~100 KiB a nesting level in debug builds,
/// more than a 2 MiB runtime worker has for the 32 levels allowed. Only touched pages count.
pub const CEL_STACK: usize = 64 << 20;

/// Runs `work` on a scoped thread with [`CEL_STACK`] of stack.
fn on_big_stack<T: Send>(work: impl FnOnce() -> Result<T, CelError> + Send) -> Result<T, CelError> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("canary-cel-parse".into())
            .stack_size(CEL_STACK)
            .spawn_scoped(scope, work)
            .map_err(|e| CelError::Thread(e.to_string()))?;
        thread
            .join()
            .unwrap_or_else(|_| Err(CelError::Thread("the parser panicked".into())))
    })
}

fn syntax(errors: ParseErrors) -> CelError {
    let Some(first) = errors.errors.first() else {
        return CelError::Syntax {
            line: 0,
            column: 0,
            message: "unparsable".into(),
        };
    };
    if first.msg.contains("Recursion limit") {
        return CelError::TooDeep;
    }
    let message: String = first.msg.chars().take(200).collect();
    CelError::Syntax {
        line: first.pos.0,
        column: first.pos.1,
        message,
    }
}

/// Checks the tree's depth and how deeply comprehensions nest in one another's loops.
fn measure(expr: &IdedExpr, depth: usize, loops: usize) -> Result<(), CelError> {
    if depth > MAX_CEL_DEPTH {
        return Err(CelError::TooDeep);
    }
    if let Expr::Comprehension(c) = &expr.expr {
        let inner = loops + 1;
        if inner > MAX_CEL_LOOPS {
            return Err(CelError::TooManyLoops);
        }
        measure(&c.iter_range, depth + 1, loops)?;
        measure(&c.accu_init, depth + 1, loops)?;
        for part in [&c.loop_cond, &c.loop_step, &c.result] {
            measure(part, depth + 1, inner)?;
        }
        return Ok(());
    }
    children(expr)
        .into_iter()
        .try_for_each(|child| measure(child, depth + 1, loops))
}

/// The direct sub-expressions of anything but a comprehension.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    use cel::common::ast::EntryExpr;
    match &expr.expr {
        Expr::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Map(map) => (map.entries.iter())
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Struct(s) => (s.entries.iter())
            .flat_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
                EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Comprehension(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {
            Vec::new()
        }
    }
}

/// Makes every comprehension call [`TICK`] before each iteration's work, where an error ends
/// the loop at once (never where `all`/`exists` would defer it): on the loop condition, or,
/// for the `map`/`filter` shape the crate runs in place, on its guard or appended element.
fn instrument(expr: &mut IdedExpr, next_id: &mut u64) {
    use cel::common::ast::EntryExpr;
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                instrument(part, next_id);
            }
            wrap(tick_target(c), next_id);
        }
        Expr::Call(call) => {
            if let Some(target) = call.target.as_deref_mut() {
                instrument(target, next_id);
            }
            call.args.iter_mut().for_each(|a| instrument(a, next_id));
        }
        Expr::List(list) => list
            .elements
            .iter_mut()
            .for_each(|e| instrument(e, next_id)),
        Expr::Select(select) => instrument(&mut select.operand, next_id),
        Expr::Map(cel::common::ast::MapExpr { entries })
        | Expr::Struct(cel::common::ast::StructExpr { entries, .. }) => {
            for entry in entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        instrument(&mut e.key, next_id);
                        instrument(&mut e.value, next_id);
                    }
                    EntryExpr::StructField(f) => instrument(&mut f.value, next_id),
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// For a `map`/`filter` (`@result + [e]`, maybe guarded as `g ? @result + [e] : @result`),
/// which the crate runs in place only while its loop condition is a literal: the guard, or
/// the appended element; else the loop condition.
fn tick_target(c: &mut ComprehensionExpr) -> &mut IdedExpr {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(name) if name == accu);
    let in_place = matches!(c.loop_cond.expr, Expr::Literal(_)) && is_accu(&c.result);
    let slot = match &c.loop_step.expr {
        Expr::Call(call) if in_place => match (call.func_name.as_str(), call.args.as_slice()) {
            (operators::CONDITIONAL, [_, _, otherwise]) if is_accu(otherwise) => Slot::Guard,
            (operators::ADD, [lhs, rhs]) if is_accu(lhs) => match &rhs.expr {
                Expr::List(list) if !list.elements.is_empty() => Slot::Element,
                _ => Slot::Condition,
            },
            _ => Slot::Condition,
        },
        _ => Slot::Condition,
    };
    let Expr::Call(call) = &mut c.loop_step.expr else {
        return &mut c.loop_cond;
    };
    match (slot, call.args.as_mut_slice()) {
        (Slot::Guard, [guard, ..]) => guard,
        (Slot::Element, [_, rhs]) => match &mut rhs.expr {
            Expr::List(list) => match list.elements.first_mut() {
                Some(element) => element,
                None => &mut c.loop_cond,
            },
            _ => &mut c.loop_cond,
        },
        _ => &mut c.loop_cond,
    }
}

/// Where a comprehension checks its deadline.
#[derive(Clone, Copy)]
enum Slot {
    Condition,
    Guard,
    Element,
}

/// Replaces `expr` with `TICK(expr)`.
fn wrap(expr: &mut IdedExpr, next_id: &mut u64) {
    wrap_in(TICK, expr, next_id);
}

/// Replaces `expr` with `function(expr)`.
fn wrap_in(function: &str, expr: &mut IdedExpr, next_id: &mut u64) {
    let inner = std::mem::take(expr);
    *next_id -= 1;
    *expr = IdedExpr {
        id: *next_id,
        expr: Expr::Call(CallExpr {
            func_name: function.into(),
            target: None,
            args: vec![inner],
        }),
    };
}

/// Hands `expr`'s value through [`METER`] when evaluating it can make a new value, after
/// metering its parts: between two meters the evaluator copies at most one value.
fn meter(expr: &mut IdedExpr, next_id: &mut u64) {
    meter_parts(expr, next_id);
    if makes_value(expr) {
        wrap_in(METER, expr, next_id);
    }
}

/// A list element or map value, which the literal deep-copies: metered even when it only
/// names a value, so the copy is charged before the next element's.
fn meter_copied(expr: &mut IdedExpr, next_id: &mut u64) {
    meter_parts(expr, next_id);
    if !matches!(&expr.expr, Expr::Literal(_)) && !is_call_to(expr, TICK) {
        wrap_in(METER, expr, next_id);
    }
}

/// Meters `expr`'s sub-expressions, not `expr` itself. Names (`a.b.c`, a call's target)
/// stay as written: the crate resolves qualified names from their shape.
fn meter_parts(expr: &mut IdedExpr, next_id: &mut u64) {
    use cel::common::ast::EntryExpr;
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = call.target.as_deref_mut() {
                meter_unless_name(target, next_id);
            }
            // A tick checks its argument's value already.
            let ticked = call.func_name == TICK;
            for arg in &mut call.args {
                if ticked {
                    meter_parts(arg, next_id)
                } else {
                    meter(arg, next_id)
                }
            }
        }
        Expr::List(list) => (list.elements.iter_mut()).for_each(|e| meter_copied(e, next_id)),
        Expr::Select(select) => meter_unless_name(&mut select.operand, next_id),
        Expr::Map(cel::common::ast::MapExpr { entries })
        | Expr::Struct(cel::common::ast::StructExpr { entries, .. }) => {
            for entry in entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(e) => {
                        meter(&mut e.key, next_id);
                        meter_copied(&mut e.value, next_id);
                    }
                    EntryExpr::StructField(f) => meter_copied(&mut f.value, next_id),
                }
            }
        }
        Expr::Comprehension(c) => meter_comprehension(c, next_id),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Keeps the shapes the crate recognises (`@result && x`, `@result + [e]`, the guard's
/// `?:`, a literal loop condition, `@result` as the result): they decide how it loops, and
/// `map`/`filter` append in place only in that shape. Their parts are metered.
fn meter_comprehension(c: &mut ComprehensionExpr, next_id: &mut u64) {
    let accu = c.accu_var.clone();
    meter(&mut c.iter_range, next_id);
    meter_parts(&mut c.accu_init, next_id);
    meter_parts(&mut c.loop_cond, next_id);
    meter_step(&mut c.loop_step, &accu, next_id);
    if !is_ident(&c.result, &accu) {
        meter(&mut c.result, next_id);
    }
}

fn meter_step(step: &mut IdedExpr, accu: &str, next_id: &mut u64) {
    let Expr::Call(call) = &mut step.expr else {
        return meter(step, next_id);
    };
    let folds = call.target.is_none() && call.args.iter().any(|a| is_ident(a, accu));
    if call.func_name == operators::CONDITIONAL && call.target.is_none() {
        for (i, arg) in call.args.iter_mut().enumerate() {
            if i == 0 {
                meter(arg, next_id)
            } else {
                meter_step(arg, accu, next_id)
            }
        }
    } else if folds {
        for arg in &mut call.args {
            match &mut arg.expr {
                Expr::Ident(_) => {}
                Expr::List(list) => {
                    (list.elements.iter_mut()).for_each(|e| meter_copied(e, next_id))
                }
                _ => meter(arg, next_id),
            }
        }
    } else {
        meter(step, next_id);
    }
}

/// Meters a call's target or a selection's operand, leaving a name as written.
fn meter_unless_name(expr: &mut IdedExpr, next_id: &mut u64) {
    if matches!(&expr.expr, Expr::Ident(_) | Expr::Select(_)) {
        meter_parts(expr, next_id);
    } else {
        meter(expr, next_id);
    }
}

/// Whether evaluating `expr` can make a new value rather than borrow one.
fn makes_value(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Call(call) => call.func_name != TICK,
        Expr::List(_) | Expr::Map(_) | Expr::Struct(_) | Expr::Comprehension(_) => true,
        Expr::Select(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

fn is_call_to(expr: &IdedExpr, function: &str) -> bool {
    matches!(&expr.expr, Expr::Call(call) if call.func_name == function)
}

fn is_ident(expr: &IdedExpr, name: &str) -> bool {
    matches!(&expr.expr, Expr::Ident(ident) if ident == name)
}

#[cfg(test)]
#[path = "cel_tests.rs"]
mod tests;
