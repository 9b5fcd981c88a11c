//! The `#[call]` attribute of `courier-sdk`; plugins use it as
//! `courier_sdk::call` (also in the prelude).

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::{Expr, ExprLit, ItemFn, Lit, LitBool, LitStr, Meta, parse_macro_input};

/// Declares a function as one of the plugin's calls:
/// `#[call(action, idempotent = false)]` or `#[call(data)]`, with optional
/// `name = "…"` (default: the function's name) and `title = "…"` (default:
/// the name). The function's doc comment becomes the call's description.
///
/// The function is kept as written (so tests call it directly); beside it a
/// module of the same name gets `call()`, the [`Call`] to pass to
/// `Plugin::call`: `.call(create_customer::call())`.
///
/// An attribute rather than a builder because the declaration then sits on
/// the function it declares, says `action`/`data` and idempotency once, and
/// reuses the doc comment and the name already written, so nothing is
/// repeated that could drift apart; `Call::action(name, handler)` remains for
/// calls built at run time.
///
/// [`Call`]: https://docs.rs/courier-sdk/latest/courier_sdk/struct.Call.html
#[proc_macro_attribute]
pub fn call(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    let mut kind: Option<syn::Ident> = None;
    let mut idempotent: Option<LitBool> = None;
    let mut name: Option<LitStr> = None;
    let mut title: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("data") || meta.path.is_ident("action") {
            if kind.is_some() {
                return Err(meta.error("`data` or `action`, once"));
            }
            kind = meta.path.get_ident().cloned();
            Ok(())
        } else if meta.path.is_ident("idempotent") {
            idempotent = Some(
                if meta.input.is_empty() || meta.input.peek(syn::Token![,]) {
                    LitBool::new(true, Span::call_site())
                } else {
                    meta.value()?.parse()?
                },
            );
            Ok(())
        } else if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("title") {
            title = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error(
                "expected `data`, `action`, `idempotent [= bool]`, `name = \"…\"` or `title = \"…\"`",
            ))
        }
    });
    parse_macro_input!(attr with parser);
    let Some(kind) = kind else {
        return syn::Error::new(
            Span::call_site(),
            "say what the call is: `#[call(data)]` (reads) or `#[call(action)]` (changes something)",
        )
        .to_compile_error()
        .into();
    };

    let ident = &function.sig.ident;
    let vis = &function.vis;
    let name = name.unwrap_or_else(|| LitStr::new(&ident.to_string(), ident.span()));
    let description = doc_text(&function);
    let idempotent = idempotent.map(|flag| quote!(.idempotent(#flag)));
    let title = title.map(|title| quote!(.title(#title)));
    let module_doc = format!(
        "The declaration of the call `{}` (see `#[call]`).",
        name.value()
    );
    quote! {
        #function

        #[doc = #module_doc]
        #vis mod #ident {
            /// The call, for `Plugin::call`.
            pub(crate) fn call() -> ::courier_sdk::Call {
                ::courier_sdk::Call::#kind(#name, super::#ident)
                    .description(#description)
                    #idempotent
                    #title
            }
        }
    }
    .into()
}

/// The function's doc comment as text: lines trimmed of the one space
/// rustdoc adds, joined with newlines.
fn doc_text(function: &ItemFn) -> String {
    let lines: Vec<String> = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) => Some(text.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}
