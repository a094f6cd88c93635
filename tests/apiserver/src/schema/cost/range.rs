//! Size and cost ranges as cel-go's estimator computes them, and what it knows of the values
//! an expression builds or a function is called with.

use super::types::Ty;
use cel::common::ast::IdedExpr;

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

/// cel-go's `AstNode`: a call's target or argument as function estimators see it.
#[derive(Debug, Clone)]
pub struct Node<'e, 'a> {
    pub path: Vec<String>,
    pub ty: Ty<'a>,
    pub expr: Option<&'e IdedExpr>,
    pub size: Option<Range>,
}
