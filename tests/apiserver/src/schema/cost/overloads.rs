//! Overload resolution for cost estimation: the overload ids of cel-go's standard library
//! (checker/decls and common/overloads) a call matches, given its argument types, and the
//! result type. Library functions (ext strings, kube's lists, regex, urls, quantity) are priced
//! by function name in kube, so they resolve to their name.

use super::types::Ty;

/// A parameter of a standard overload.
#[derive(Debug, Clone, Copy, PartialEq)]
enum P {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Duration,
    Timestamp,
    List,
    Map,
    Any,
}

impl P {
    fn accepts(self, t: &Ty<'_>) -> bool {
        matches!(
            (self, t),
            (_, Ty::Dyn)
                | (P::Any, _)
                | (P::Bool, Ty::Bool)
                | (P::Int, Ty::Int)
                | (P::Uint, Ty::Uint)
                | (P::Double, Ty::Double)
                | (P::String, Ty::String)
                | (P::Bytes, Ty::Bytes)
                | (P::Duration, Ty::Duration)
                | (P::Timestamp, Ty::Timestamp)
                | (P::List, Ty::List(_))
                | (P::Map, Ty::Map(..))
        )
    }

    fn ty<'a>(self) -> Ty<'a> {
        match self {
            P::Bool => Ty::Bool,
            P::Int => Ty::Int,
            P::Uint => Ty::Uint,
            P::Double => Ty::Double,
            P::String => Ty::String,
            P::Bytes => Ty::Bytes,
            P::Duration => Ty::Duration,
            P::Timestamp => Ty::Timestamp,
            P::List => Ty::List(Box::new(Ty::Dyn)),
            P::Map => Ty::Map(Box::new(Ty::Dyn), Box::new(Ty::Dyn)),
            P::Any => Ty::Dyn,
        }
    }

    /// The type's name in cel-go's overload ids.
    fn id(self) -> &'static str {
        match self {
            P::Bool => "bool",
            P::Int => "int64",
            P::Uint => "uint64",
            P::Double => "double",
            P::String => "string",
            P::Bytes => "bytes",
            P::Duration => "duration",
            P::Timestamp => "timestamp",
            P::List => "list",
            P::Map => "map",
            P::Any => "dyn",
        }
    }
}

type Candidate = (&'static str, &'static [P], P);

use P::{Bool, Bytes, Double, Duration, Int, List, Map, String as Str, Timestamp, Uint};

const ADD: [Candidate; 9] = [
    ("add_int64", &[Int, Int], Int),
    ("add_uint64", &[Uint, Uint], Uint),
    ("add_double", &[Double, Double], Double),
    ("add_string", &[Str, Str], Str),
    ("add_bytes", &[Bytes, Bytes], Bytes),
    ("add_list", &[List, List], List),
    ("add_timestamp_duration", &[Timestamp, Duration], Timestamp),
    ("add_duration_timestamp", &[Duration, Timestamp], Timestamp),
    ("add_duration_duration", &[Duration, Duration], Duration),
];
const SUBTRACT: [Candidate; 6] = [
    ("subtract_int64", &[Int, Int], Int),
    ("subtract_uint64", &[Uint, Uint], Uint),
    ("subtract_double", &[Double, Double], Double),
    (
        "subtract_timestamp_timestamp",
        &[Timestamp, Timestamp],
        Duration,
    ),
    (
        "subtract_timestamp_duration",
        &[Timestamp, Duration],
        Timestamp,
    ),
    (
        "subtract_duration_duration",
        &[Duration, Duration],
        Duration,
    ),
];
const NUMERIC: [P; 3] = [Int, Uint, Double];
const ORDERED: [P; 8] = [Bool, Int, Uint, Double, Str, Bytes, Timestamp, Duration];
const CROSS_NUMERIC: [(P, P); 6] = [
    (Int, Uint),
    (Int, Double),
    (Uint, Int),
    (Uint, Double),
    (Double, Int),
    (Double, Uint),
];

/// Conversion functions: name and the argument types they accept.
const CONVERSIONS: [(&str, P, &[P]); 8] = [
    ("int", Int, &[Int, Uint, Double, Str, Timestamp]),
    ("uint", Uint, &[Uint, Int, Double, Str]),
    ("double", Double, &[Double, Int, Uint, Str]),
    (
        "string",
        Str,
        &[Str, Bool, Int, Uint, Double, Bytes, Timestamp, Duration],
    ),
    ("bytes", Bytes, &[Bytes, Str]),
    ("bool", Bool, &[Bool, Str]),
    ("duration", Duration, &[Duration, Str]),
    ("timestamp", Timestamp, &[Timestamp, Str, Int]),
];

/// The overload ids `name` may resolve to with these argument types, and its result type.
pub fn resolve<'a>(name: &str, target: Option<&Ty<'a>>, args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let fixed = |id: &str, ty: Ty<'a>| (vec![id.to_string()], ty);
    match (name, target) {
        ("_&&_", _) => fixed("logical_and", Ty::Bool),
        ("_||_", _) => fixed("logical_or", Ty::Bool),
        ("!_", _) => fixed("logical_not", Ty::Bool),
        ("@not_strictly_false", _) => fixed("not_strictly_false", Ty::Bool),
        ("_==_", _) => fixed("equals", Ty::Bool),
        ("_!=_", _) => fixed("not_equals", Ty::Bool),
        ("@in", _) => pick(
            &[
                ("in_list", &[P::Any, List], Bool),
                ("in_map", &[P::Any, Map], Bool),
            ],
            args,
        ),
        ("_?_:_", _) => {
            let ty = match args {
                [_, a, b] => a.clone().join(b),
                _ => Ty::Dyn,
            };
            fixed("conditional", ty)
        }
        ("_<_", _) => compare("less", args),
        ("_<=_", _) => compare("less_equals", args),
        ("_>_", _) => compare("greater", args),
        ("_>=_", _) => compare("greater_equals", args),
        ("_+_", _) => add(args),
        ("_-_", _) => pick(&SUBTRACT, args),
        ("_*_", _) => arithmetic("multiply", &NUMERIC, args),
        ("_/_", _) => arithmetic("divide", &NUMERIC, args),
        ("_%_", _) => arithmetic("modulo", &[Int, Uint], args),
        ("-_", _) => arithmetic("negate", &[Int, Double], args),
        ("_[_]", _) => index(args),
        ("size", _) => size(target, args),
        ("dyn", None) => fixed("to_dyn", Ty::Dyn),
        ("type", None) => fixed("type", Ty::Type),
        ("matches", Some(_)) => fixed("matches_string", Ty::Bool),
        ("matches", None) => fixed("matches", Ty::Bool),
        ("contains", Some(Ty::String | Ty::Dyn)) => fixed("contains_string", Ty::Bool),
        ("startsWith", Some(_)) => fixed("starts_with_string", Ty::Bool),
        ("endsWith", Some(_)) => fixed("ends_with_string", Ty::Bool),
        ("format", Some(_)) => fixed("string_format", Ty::String),
        ("strings.quote", None) => fixed("strings_quote", Ty::String),
        (name, None) if CONVERSIONS.iter().any(|c| c.0 == name) => conversion(name, args),
        (name, target) => (
            vec![library_id(name, target, args)],
            library_type(name, target),
        ),
    }
}

/// The candidates whose parameters accept `args`; the result type is theirs when they agree.
fn pick<'a>(candidates: &[Candidate], args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let matching: Vec<&Candidate> = (candidates.iter())
        .filter(|(_, params, _)| {
            params.len() == args.len() && params.iter().zip(args).all(|(p, a)| p.accepts(a))
        })
        .collect();
    let ids = matching.iter().map(|c| c.0.to_string()).collect();
    let ty = match matching.as_slice() {
        [first, rest @ ..] if rest.iter().all(|c| c.2 == first.2) => first.2.ty(),
        _ => Ty::Dyn,
    };
    (ids, ty)
}

fn compare<'a>(op: &str, args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let accepts = |a: P, b: P| matches!(args, [x, y] if a.accepts(x) && b.accepts(y));
    let same = ORDERED
        .iter()
        .filter(|p| accepts(**p, **p))
        .map(|p| format!("{op}_{}", p.id()));
    let cross = CROSS_NUMERIC
        .iter()
        .filter(|(a, b)| accepts(*a, *b))
        .map(|(a, b)| format!("{op}_{}_{}", a.id(), b.id()));
    (same.chain(cross).collect(), Ty::Bool)
}

fn arithmetic<'a>(op: &str, types: &[P], args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let matching: Vec<P> = (types.iter().copied())
        .filter(|p| args.iter().all(|a| p.accepts(a)))
        .collect();
    let ty = match matching.as_slice() {
        [one] => one.ty(),
        _ => Ty::Dyn,
    };
    let ids = matching
        .iter()
        .map(|p| format!("{op}_{}", p.id()))
        .collect();
    (ids, ty)
}

fn add<'a>(args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let (ids, ty) = pick(&ADD, args);
    match (args, ty) {
        ([Ty::List(a), Ty::List(b)], Ty::List(_)) => {
            let elem = match (&**a, &**b) {
                (Ty::Dyn, other) | (other, Ty::Dyn) => other.clone(),
                (a, b) => a.clone().join(b),
            };
            (ids, Ty::List(Box::new(elem)))
        }
        (_, ty) => (ids, ty),
    }
}

fn index<'a>(args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let [container, key] = args else {
        return (vec![], Ty::Dyn);
    };
    let mut ids = vec![];
    if P::List.accepts(container) && Int.accepts(key) {
        ids.push("index_list".to_string());
    }
    if P::Map.accepts(container) {
        ids.push("index_map".to_string());
    }
    let ty = match container {
        Ty::List(elem) => (**elem).clone(),
        Ty::Map(_, value) => (**value).clone(),
        _ => Ty::Dyn,
    };
    (ids, ty)
}

fn size<'a>(target: Option<&Ty<'a>>, args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let (arg, member) = match (target, args) {
        (Some(t), []) => (t, true),
        (None, [a]) => (a, false),
        _ => return (vec![], Ty::Int),
    };
    let ids = [Str, Bytes, List, Map]
        .iter()
        .filter(|p| p.accepts(arg))
        .map(|p| match member {
            true => format!("{}_size", p.id()),
            false => format!("size_{}", p.id()),
        })
        .collect();
    (ids, Ty::Int)
}

fn conversion<'a>(name: &str, args: &[Ty<'a>]) -> (Vec<String>, Ty<'a>) {
    let Some((_, result, from)) = CONVERSIONS.iter().find(|c| c.0 == name) else {
        return (vec![], Ty::Dyn);
    };
    let [arg] = args else {
        return (vec![], result.ty());
    };
    let ids = (from.iter())
        .filter(|p| p.accepts(arg))
        .map(|p| format!("{}_to_{}", p.id(), result.id()))
        .collect();
    (ids, result.ty())
}

/// Library calls are priced by name in kube's estimator; only `ip()` of a CIDR has its own id.
fn library_id(name: &str, target: Option<&Ty<'_>>, args: &[Ty<'_>]) -> String {
    match (name, target, args) {
        ("ip", Some(Ty::Opaque), []) => "cidr_ip".to_string(),
        _ => name.to_string(),
    }
}

fn library_type<'a>(name: &str, target: Option<&Ty<'a>>) -> Ty<'a> {
    match name {
        "charAt" | "lowerAscii" | "upperAscii" | "trim" | "substring" | "replace" | "reverse"
        | "format" | "join" | "find" | "strings.quote" | "getScheme" | "getHost"
        | "getHostname" | "getPort" | "getEscapedPath" => Ty::String,
        "split" | "findAll" => Ty::List(Box::new(Ty::String)),
        "indexOf" | "lastIndexOf" | "sign" | "asInteger" | "compareTo" | "prefixLength"
        | "family" => Ty::Int,
        "isSorted" | "isURL" | "isQuantity" | "isInteger" | "isGreaterThan" | "isLessThan"
        | "isIP" | "isCIDR" | "containsIP" | "containsCIDR" => Ty::Bool,
        "asApproximateFloat" => Ty::Double,
        "sum" | "min" | "max" => target.and_then(Ty::list_elem).cloned().unwrap_or(Ty::Dyn),
        "slice" => target.cloned().unwrap_or(Ty::Dyn),
        "url" | "quantity" | "ip" | "cidr" | "masked" | "add" | "sub" => Ty::Opaque,
        n if n.starts_with("get") => Ty::Int, // timestamp and duration accessors
        _ => Ty::Dyn,
    }
}
