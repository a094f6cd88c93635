//! The cost of one call: kube's library estimator (k8s.io/apiserver/pkg/cel/library/cost.go,
//! by function name) first, then cel-go's built-in estimates (by overload id), else 1.

use super::estimate::Coster;
use super::range::{EntrySize, Node, Range};
use super::types::Ty;
use cel::common::ast::{Expr, IdedExpr, LiteralValue};

/// Cost of traversing one character of a string (`common.StringTraversalCostFactor`).
const STRING_TRAVERSAL: f64 = 0.1;
/// Guessed cost per character of a regular expression (`common.RegexStringLengthCostFactor`).
const REGEX_LENGTH: f64 = 0.25;

/// A call's cost and, for strings, lists and maps, the size of its result.
pub struct CallEstimate {
    pub cost: Range,
    pub result: Option<Range>,
}

impl CallEstimate {
    fn cost(cost: Range) -> Self {
        Self { cost, result: None }
    }
}

/// cel-go's `sizeOrUnknown` of a node.
fn size(node: &Node<'_, '_>) -> Range {
    node.size.unwrap_or(Range::UNKNOWN)
}

impl<'a> Coster<'a> {
    /// cel-go's `functionCost` for one overload of the call `e`.
    pub(super) fn function_cost(
        &mut self,
        e: &IdedExpr,
        function: &str,
        overload: &str,
        target: Option<&Node<'_, 'a>>,
        args: &[Node<'_, 'a>],
        arg_costs: &[Range],
    ) -> CallEstimate {
        let arg_sum = arg_costs.iter().fold(Range::default(), |s, c| s.add(*c));
        if let Some(est) = self.library_cost(function, overload, target, args) {
            return CallEstimate {
                cost: est.cost.add(arg_sum),
                result: est.result,
            };
        }
        if let Some(est) = string_cost(overload, target, args, arg_sum) {
            return est;
        }
        match (overload, args) {
            ("logical_or" | "logical_and", _) => {
                let (lhs, rhs) = (arg_costs[0], arg_costs[1]);
                CallEstimate::cost(Range {
                    min: lhs.min,
                    max: lhs.max.saturating_add(rhs.max),
                })
            }
            ("conditional", [_, yes, no]) => self.conditional(e, yes, no, arg_costs),
            ("add_string" | "add_bytes" | "add_list", [a, b]) => {
                let result = size(a).add(size(b));
                let entry = EntrySize::union_of(self.entry_of(a), self.entry_of(b));
                if let Some(entry) = entry {
                    self.entries.insert(e.id, entry);
                }
                let cost = match overload {
                    "add_list" => Range::fixed(1).add(arg_sum),
                    _ => result.factor(STRING_TRAVERSAL).add(arg_sum),
                };
                CallEstimate {
                    cost,
                    result: Some(result),
                }
            }
            (id, [a, b]) if compares_by_size(id) => {
                let smallest = size(a).max.min(size(b).max);
                let cost = Range {
                    min: u64::from(smallest > 0),
                    max: smallest,
                };
                CallEstimate::cost(cost.factor(STRING_TRAVERSAL).add(arg_sum))
            }
            _ => CallEstimate::cost(Range::fixed(1).add(arg_sum)),
        }
    }

    fn entry_of(&self, node: &Node<'_, '_>) -> Option<EntrySize> {
        node.expr.and_then(|e| self.entry_size(e))
    }

    fn conditional(
        &mut self,
        e: &IdedExpr,
        yes: &Node<'_, 'a>,
        no: &Node<'_, 'a>,
        arg_costs: &[Range],
    ) -> CallEstimate {
        if let Some(entry) = EntrySize::union_of(self.entry_of(yes), self.entry_of(no)) {
            self.entries.insert(e.id, entry);
        }
        CallEstimate {
            cost: arg_costs[0].add(arg_costs[1].union(arg_costs[2])),
            result: Some(size(yes).union(size(no))),
        }
    }

    /// kube's `sizeEstimate`: the computed size, else the schema's, else unknown.
    fn kube_size(&self, node: &Node<'_, '_>) -> Range {
        node.size
            .or_else(|| self.schema_size(&node.path))
            .unwrap_or(Range::UNKNOWN)
    }

    /// kube's `listElementNode`: the first type parameter, with the path to the items.
    fn element(&self, list: &Node<'_, 'a>) -> Option<Node<'static, 'a>> {
        let ty = match &list.ty {
            Ty::List(elem) | Ty::Map(elem, _) => (**elem).clone(),
            _ => return None,
        };
        let mut path = list.path.clone();
        if !path.is_empty() {
            path.push("@items".to_string());
        }
        Some(Node {
            path,
            ty,
            expr: None,
            size: None,
        })
    }

    /// kube's `CostEstimator.EstimateCallCost` (by function name).
    fn library_cost(
        &self,
        function: &str,
        overload: &str,
        target: Option<&Node<'_, 'a>>,
        args: &[Node<'_, 'a>],
    ) -> Option<CallEstimate> {
        const NOMINAL: [&str; 16] = [
            "masked",
            "prefixLength",
            "family",
            "isUnspecified",
            "isLoopback",
            "isLinkLocalMulticast",
            "isLinkLocalUnicast",
            "sign",
            "asInteger",
            "isInteger",
            "asApproximateFloat",
            "isGreaterThan",
            "isLessThan",
            "compareTo",
            "add",
            "sub",
        ];
        let traversal = |n: &Node<'_, '_>| self.kube_size(n).factor(STRING_TRAVERSAL);
        let est = match (function, target, args) {
            ("isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf", Some(t), _) => {
                CallEstimate::cost(self.list_traversal(t))
            }
            ("url", _, [a]) => CallEstimate::cost(traversal(a)),
            ("cidr" | "isIP" | "isCIDR" | "quantity" | "isQuantity", Some(_), [a, ..]) => {
                CallEstimate::cost(traversal(a))
            }
            ("ip", Some(_), [a, ..]) if overload != "cidr_ip" => CallEstimate::cost(traversal(a)),
            ("ip", Some(_), _) => CallEstimate::cost(Range::fixed(1)),
            (name, _, _) if NOMINAL.contains(&name) => CallEstimate::cost(Range::fixed(1)),
            (_, Some(t), _) => return self.library_string_cost(function, t, args),
            _ => return None,
        };
        Some(est)
    }

    /// kube's estimates of the string library's functions on `target`.
    fn library_string_cost(
        &self,
        function: &str,
        target: &Node<'_, 'a>,
        args: &[Node<'_, 'a>],
    ) -> Option<CallEstimate> {
        let size = self.kube_size(target);
        let est = match (function, args) {
            ("lowerAscii" | "upperAscii" | "substring" | "trim", _) => CallEstimate {
                cost: size.factor(STRING_TRAVERSAL),
                result: Some(size),
            },
            ("replace", [from, to, ..]) => CallEstimate {
                cost: size.factor(2.0 * STRING_TRAVERSAL),
                result: Some(replaced_size(
                    size,
                    self.kube_size(from),
                    self.kube_size(to),
                )),
            },
            ("split", _) => CallEstimate {
                cost: size.factor(2.0 * STRING_TRAVERSAL),
                result: Some(Range {
                    min: 0,
                    max: split_limit(args).unwrap_or(size.max),
                }),
            },
            ("join", _) => {
                let joined = self.joined_size(target, args.first());
                CallEstimate {
                    cost: joined.factor(STRING_TRAVERSAL),
                    result: Some(joined),
                }
            }
            ("find" | "findAll", [re, ..]) => {
                let text = size.add(Range::fixed(1)).factor(STRING_TRAVERSAL);
                let regex = self.kube_size(re).factor(REGEX_LENGTH);
                CallEstimate {
                    cost: text.mul(regex),
                    result: Some(Range {
                        min: 0,
                        max: size.max,
                    }),
                }
            }
            _ => return None,
        };
        Some(est)
    }

    /// One comparison per element, plus the traversal of string elements; a string target
    /// (`indexOf` on a string) is one traversal.
    fn list_traversal(&self, target: &Node<'_, 'a>) -> Range {
        let Some(elem) = self.element(target) else {
            return self.kube_size(target).factor(STRING_TRAVERSAL);
        };
        let mut per_element = Range::fixed(1);
        if matches!(elem.ty, Ty::String | Ty::Bytes) {
            per_element = per_element.add(self.kube_size(&elem).factor(STRING_TRAVERSAL));
        }
        self.kube_size(target).mul(per_element)
    }

    fn joined_size(&self, list: &Node<'_, 'a>, separator: Option<&Node<'_, 'a>>) -> Range {
        let items = self.kube_size(list);
        let mut joined = match self.element(list) {
            Some(elem) => items.mul(self.kube_size(&elem)),
            None => Range::default(),
        };
        if let Some(sep) = separator {
            let separators = Range {
                min: items.min.saturating_sub(1),
                max: items.max.saturating_sub(1),
            };
            joined = joined.add(self.kube_size(sep).mul(separators));
        }
        joined
    }
}

impl EntrySize {
    fn union_of(a: Option<EntrySize>, b: Option<EntrySize>) -> Option<EntrySize> {
        let (a, b) = (a?, b?);
        Some(EntrySize {
            list: a.list,
            key: a.key.union(b.key),
            val: a.val.union(b.val),
        })
    }
}

/// cel-go's estimates of the calls that traverse a string (or a list, for `in`).
fn string_cost(
    overload: &str,
    target: Option<&Node<'_, '_>>,
    args: &[Node<'_, '_>],
    arg_sum: Range,
) -> Option<CallEstimate> {
    let traversal = |n: &Node<'_, '_>| size(n).factor(STRING_TRAVERSAL).add(arg_sum);
    let est = match (overload, target, args) {
        ("string_format", Some(t), _) => CallEstimate::cost(traversal(t)),
        ("string_to_bytes", _, [a]) => CallEstimate {
            cost: traversal(a),
            result: Some(Range {
                min: size(a).min,
                max: size(a).max.saturating_mul(4),
            }),
        },
        ("bytes_to_string", _, [a]) => CallEstimate {
            cost: traversal(a),
            result: Some(Range {
                min: size(a).min / 4,
                max: size(a).max,
            }),
        },
        ("strings_quote", _, [a]) => CallEstimate {
            cost: traversal(a),
            result: Some(Range {
                min: size(a).min.saturating_add(2),
                max: size(a).max.saturating_mul(2).saturating_add(2),
            }),
        },
        ("starts_with_string" | "ends_with_string", _, [a]) => CallEstimate::cost(traversal(a)),
        ("in_list", _, [_, list]) => CallEstimate::cost(size(list).factor(1.0).add(arg_sum)),
        ("matches_string", Some(t), [re]) => {
            // one more than the length, so that an empty string still pays for the regex
            let text = size(t).add(Range::fixed(1)).factor(STRING_TRAVERSAL);
            let regex = size(re).factor(REGEX_LENGTH);
            CallEstimate::cost(text.mul(regex).add(arg_sum))
        }
        ("contains_string", Some(t), [sub]) => {
            let text = size(t).factor(STRING_TRAVERSAL);
            let sub = size(sub).factor(STRING_TRAVERSAL);
            CallEstimate::cost(text.mul(sub).add(arg_sum))
        }
        _ => return None,
    };
    Some(est)
}

/// Overloads cel-go prices by the smaller operand's size: equality and string/bytes order.
fn compares_by_size(id: &str) -> bool {
    matches!(id, "equals" | "not_equals")
        || (["less", "greater", "less_equals", "greater_equals"].iter())
            .any(|op| id == format!("{op}_string") || id == format!("{op}_bytes"))
}

/// The third argument of `split` when it is a literal: the most parts there can be.
fn split_limit(args: &[Node<'_, '_>]) -> Option<u64> {
    match &args.get(1)?.expr?.expr {
        Expr::Literal(LiteralValue::Int(n)) => u64::try_from(**n).ok(),
        Expr::Literal(LiteralValue::UInt(n)) => Some(**n),
        _ => None,
    }
}

/// kube's bound of `replace`'s result: every occurrence of the shortest `from` replaced by the
/// longest `to`, and the reverse for the lower bound.
fn replaced_size(text: Range, from: Range, to: Range) -> Range {
    let div_ceil = |a: u64, b: u64| (a as f64 / b as f64).ceil() as u64;
    let (mut count, mut kept) = (Range::default(), Range::default());
    if from.min == 0 {
        count.max = text.max.saturating_add(1);
        kept.max = text.max;
    } else if to.max <= from.min {
        kept.max = text.max;
    } else {
        count.max = div_ceil(text.max, from.min);
    }
    if from.max == 0 {
        count.min = text.min.saturating_add(1);
        kept.min = text.min;
    } else if from.max <= to.min {
        kept.min = text.min;
    } else {
        count.min = div_ceil(text.min, from.max);
    }
    count.mul(to).add(kept)
}
