use super::*;

fn error(text: &str) -> CelError {
    compile(text).expect_err(text)
}

#[test]
fn syntax_errors_name_line_and_column() {
    match error("body.status == ") {
        CelError::Syntax { line, column, .. } => assert_eq!((line, column), (1, 16)),
        other => panic!("{other:?}"),
    }
    match error("body.a &&\n  body.b ==== 1") {
        CelError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("{other:?}"),
    }
    let field = FieldError::from(error("body.status == "));
    assert_eq!(field.field, "spec.http.expect.cel");
    assert!(
        field.message.contains("line 1, column 16"),
        "{}",
        field.message
    );
}

#[test]
fn length_is_capped() {
    let long = format!("body.a == '{}'", "x".repeat(MAX_CEL_BYTES));
    assert_eq!(error(&long), CelError::TooLong(long.len()));
    let fits = format!("body.a == '{}'", "x".repeat(MAX_CEL_BYTES - 12));
    assert_eq!(fits.len(), MAX_CEL_BYTES);
    compile(&fits).unwrap();
    assert_eq!(error("   "), CelError::Empty);
}

#[test]
fn nesting_is_capped() {
    let nested = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    compile(&nested(20)).unwrap();
    assert_eq!(error(&nested(200)), CelError::TooDeep);
    assert_eq!(error(&nested(1000)), CelError::TooDeep);
    compile(&deep(20)).unwrap();
    assert_eq!(error(&deep(40)), CelError::TooDeep);
    // Member chains do not nest the parser's rules, only the tree.
    let chain = format!("body{}", ".a".repeat(40));
    assert_eq!(error(&chain), CelError::TooDeep);
    let chain = format!("body{}", ".a".repeat(1000));
    assert_eq!(error(&chain), CelError::TooDeep);
    let sums = (0..40)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    assert_eq!(error(&format!("{sums} > 0")), CelError::TooDeep);
}

#[test]
fn comprehension_nesting_is_capped() {
    compile("body.items.all(x, x.ok)").unwrap();
    compile("body.items.all(x, body.items.exists(y, x == y))").unwrap();
    // Sequential comprehensions (one's result feeding another's range) do not multiply.
    compile("body.items.map(x, x.n).filter(y, y > 1).map(z, z).exists(w, w == 2)").unwrap();
    for text in [
        "body.a.all(x, body.a.all(y, body.a.all(z, x == z)))",
        "body.a.exists(x, body.a.map(y, body.a.filter(z, z == y)).size() > 0)",
        "body.a.exists_one(x, body.a.all(y, body.a.exists(z, true)))",
    ] {
        assert_eq!(error(text), CelError::TooManyLoops, "{text}");
    }
}

fn ticks(expr: &IdedExpr) -> usize {
    let own = matches!(&expr.expr, Expr::Call(call) if call.func_name == TICK) as usize;
    let inner: usize = match &expr.expr {
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .map(ticks)
        .sum(),
        _ => children(expr).into_iter().map(ticks).sum(),
    };
    own + inner
}

#[test]
fn every_comprehension_ticks() {
    for (text, loops) in [
        ("body.status == 'UP'", 0),
        ("body.a.all(x, x > 1)", 1),
        ("body.a.exists(x, x > 1)", 1),
        ("body.a.exists_one(x, x > 1)", 1),
        ("body.a.map(x, x + 1).size() > 0", 1),
        ("body.a.map(x, x > 1, x + 1).size() > 0", 1),
        ("body.a.filter(x, x > 1).size() > 0", 1),
        ("body.a.all(x, body.a.exists(y, y == x))", 2),
        ("{'k': body.a.map(x, x)}.k.size() > 0", 1),
    ] {
        assert_eq!(ticks(&compile(text).unwrap().expr), loops, "{text}");
    }
}

/// `function(inner)`'s argument, when `expr` is a call to `function`.
fn through<'e>(expr: &'e IdedExpr, function: &str) -> Option<&'e IdedExpr> {
    match &expr.expr {
        Expr::Call(call) if call.func_name == function => call.args.first(),
        _ => None,
    }
}

#[test]
fn every_copy_is_metered() {
    // A list literal copies each element: each is metered, then the list.
    let expr = compile("[body, body.a]").unwrap().expr;
    let Some(Expr::List(list)) = through(&expr, METER).map(|e| &e.expr) else {
        panic!("the list is metered: {expr:?}");
    };
    for element in &list.elements {
        let inner = through(element, METER).expect("each element is metered");
        assert!(matches!(inner.expr, Expr::Ident(_) | Expr::Select(_)));
    }
    // A map's values too; a call's result; names stay as written.
    let expr = compile("{'k': body}.k == size(body.a.b)").unwrap().expr;
    let Some(Expr::Call(eq)) = through(&expr, METER).map(|e| &e.expr) else {
        panic!("the comparison is metered: {expr:?}");
    };
    let size = through(&eq.args[1], METER).expect("size() is metered");
    let Expr::Call(size) = &size.expr else {
        panic!("{size:?}")
    };
    assert!(
        matches!(&size.args[0].expr, Expr::Select(s) if matches!(s.operand.expr, Expr::Select(_)))
    );
    let name = compile("body.status").unwrap().expr;
    assert!(
        matches!(name.expr, Expr::Select(_)),
        "a name is not metered: {name:?}"
    );
}

#[test]
fn metering_keeps_the_shape_map_appends_in_place() {
    // The crate appends in place only for `@result + [e]` (maybe guarded) with a literal loop
    // condition and `@result` as the result; anything else copies the list on every step.
    for text in [
        "body.a.map(x, body)",
        "body.a.map(x, x > 1, [x, body])",
        "body.a.filter(x, x > 1)",
    ] {
        let expr = compile(text).unwrap().expr;
        let Some(Expr::Comprehension(c)) = through(&expr, METER).map(|e| &e.expr) else {
            panic!("the comprehension is metered: {text}");
        };
        assert!(matches!(c.loop_cond.expr, Expr::Literal(_)), "{text}");
        assert!(
            matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var),
            "{text}"
        );
        let Expr::Call(step) = &c.loop_step.expr else {
            panic!("{text}")
        };
        let append = match step.func_name.as_str() {
            "_?_:_" => &step.args[1],
            _ => &c.loop_step,
        };
        let Expr::Call(add) = &append.expr else {
            panic!("{text}")
        };
        assert_eq!(add.func_name, "_+_", "{text}");
        assert!(
            matches!(&add.args[0].expr, Expr::Ident(n) if *n == c.accu_var),
            "{text}"
        );
        assert!(matches!(add.args[1].expr, Expr::List(_)), "{text}");
    }
}
