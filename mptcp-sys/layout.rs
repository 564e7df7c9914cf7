// Used by `build.rs`: turns a bindings text into a table of layout facts (size, alignment,
// field offsets) that the layout tests compare with what a C compiler says.

/// One struct or union of a bindings text.
struct Aggregate {
    kind: &'static str,
    name: String,
    fields: Vec<(String, String)>,
}

fn parse(text: &str) -> Vec<Aggregate> {
    let mut out: Vec<Aggregate> = Vec::new();
    let mut current: Option<Aggregate> = None;
    for line in text.lines() {
        if let Some(agg) = current.as_mut() {
            if line.starts_with('}') {
                out.extend(current.take());
                continue;
            }
            if let Some(rest) = line.trim().strip_prefix("pub ") {
                if let Some((name, ty)) = rest.split_once(": ") {
                    agg.fields
                        .push((name.to_string(), ty.trim_end_matches(',').to_string()));
                }
            }
            continue;
        }
        for (prefix, kind) in [("pub struct ", "struct"), ("pub union ", "union")] {
            if let Some(rest) = line.strip_prefix(prefix) {
                if let Some(name) = rest.strip_suffix(" {") {
                    current = Some(Aggregate {
                        kind,
                        name: name.to_string(),
                        fields: Vec::new(),
                    });
                }
            }
        }
    }
    out
}

/// Rust source of `pub const LAYOUT: &[(&str, usize)]`: each entry a C expression
/// (`sizeof(..)`, `_Alignof(..)`, `offsetof(..)`) and the value Rust computes for it.
pub fn table(text: &str) -> String {
    let aggs = parse(text);
    let mut s = String::from("pub const LAYOUT: &[(&str, usize)] = &[\n");
    // Only C-nameable types: not anonymous members, not bindgen's generic helpers.
    let named = |a: &&Aggregate| {
        !a.name.contains("__bindgen_ty_") && !a.name.contains('<') && !a.name.starts_with("__B")
    };
    for agg in aggs.iter().filter(named) {
        let c = format!("{} {}", agg.kind, agg.name);
        let r = &agg.name;
        s += &format!("    (\"sizeof({c})\", ::core::mem::size_of::<{r}>()),\n");
        s += &format!("    (\"_Alignof({c})\", ::core::mem::align_of::<{r}>()),\n");
        let mut stack: Vec<(String, &Aggregate)> = vec![(String::new(), agg)];
        while let Some((base, a)) = stack.pop() {
            for (field, ty) in &a.fields {
                // bindgen's own members (bit-field storage, padding, alignment) have no C name.
                if field.starts_with("_bitfield")
                    || field.starts_with("_bindgen")
                    || field.starts_with("__bindgen_padding")
                    || field == "bindgen_union_field"
                {
                    continue;
                }
                let off = format!("::core::mem::offset_of!({}, {field})", a.name);
                let expr = if base.is_empty() {
                    off
                } else {
                    format!("{base} + {off}")
                };
                if field.starts_with("__bindgen_anon_") {
                    if let Some(inner) = aggs.iter().find(|x| &x.name == ty) {
                        stack.push((expr, inner));
                    }
                    continue;
                }
                s += &format!("    (\"offsetof({c}, {field})\", {expr}),\n");
            }
        }
    }
    s += "];\n";
    s
}
