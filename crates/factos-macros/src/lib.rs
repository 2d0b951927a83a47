//! Derive macros of factos (re-exported by `factos` behind its default
//! `derive` feature; use them as `factos::Event`).
//!
//! `#[derive(Event)]` on an enum of domain events declares, once, what the
//! store sees of each variant: its type name (the variant's name, or
//! `#[event(name = "...")]`), its payload version (`#[event(version = N)]`,
//! default 1) and its tags (each field marked `#[tag("key")]` gives the tag
//! `key:value`). It implements `factos::json::JsonEvent` (so
//! `factos::json::JsonCodec` is its codec) and adds, on the enum:
//!
//! - a constant per variant holding its type name (`Bank::DEPOSITED`);
//! - per tag key, `key_tag(value)` (the tag) and `key_query(value)` (the
//!   events of this enum's types carrying it), so the queries of a decision
//!   are built from the same declarations.
//!
//! The names are checked when the enum compiles: no two variants with one
//! type name, no empty or over-long name or tag key, no control character.

use std::collections::BTreeSet;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitInt, LitStr, Variant};

/// Longest type name the store accepts (`factos::MAX_EVENT_TYPE_BYTES`).
const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Longest tag key: room is left for a value within the store's 256 bytes.
const MAX_TAG_KEY_BYTES: usize = 64;

/// Derives `factos::json::JsonEvent`, type-name constants and tag and query
/// helpers for an enum of domain events. See the crate docs.
#[proc_macro_derive(Event, attributes(event, tag))]
pub fn derive_event(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What one variant declares.
struct Declared {
    ident: Ident,
    type_name: String,
    version: u32,
    /// (tag key, the field's binding in the variant's pattern).
    tags: Vec<(String, Ident)>,
    /// The pattern binding the tag fields (and ignoring the others).
    pattern: Tokens,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "factos::Event derives on an enum of domain events (one variant per event type)",
        ));
    };
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            input.ident.span(),
            "factos::Event needs at least one variant: an event enum without events stores nothing",
        ));
    }
    let declared = data
        .variants
        .iter()
        .map(declare)
        .collect::<syn::Result<Vec<_>>>()?;
    let mut names = BTreeSet::new();
    for (variant, d) in data.variants.iter().zip(&declared) {
        if !names.insert(d.type_name.clone()) {
            return Err(syn::Error::new(
                variant.span(),
                format!(
                    "two variants are stored as type {:?}: a stored event could not be told apart",
                    d.type_name
                ),
            ));
        }
    }
    let name = &input.ident;
    let (impl_generics, type_generics, where_clause) = input.generics.split_for_impl();
    let type_names: Vec<&String> = declared.iter().map(|d| &d.type_name).collect();
    let type_arms = declared.iter().map(|d| {
        let (pattern, type_name) = (&d.pattern, &d.type_name);
        quote!(#pattern => #type_name)
    });
    let tag_arms = declared.iter().map(|d| {
        let pattern = &d.pattern;
        let tags = d.tags.iter().map(|(key, field)| {
            let prefix = format!("{key}:");
            quote!(::std::format!("{}{}", #prefix, #field))
        });
        quote!(#pattern => ::std::vec![#(#tags),*])
    });
    let version_arms = declared.iter().map(|d| {
        let (pattern, version) = (&d.pattern, d.version);
        quote!(#pattern => #version)
    });
    let constants = declared.iter().map(|d| {
        let constant = format_ident!("{}", screaming_snake(&d.ident.to_string()));
        let type_name = &d.type_name;
        let doc = format!("The stored type name of [`{name}::{}`].", d.ident);
        quote! {
            #[doc = #doc]
            pub const #constant: &'static str = #type_name;
        }
    });
    let keys: BTreeSet<&String> = declared
        .iter()
        .flat_map(|d| d.tags.iter().map(|(key, _)| key))
        .collect();
    let helpers = keys
        .iter()
        .map(|key| tag_helpers(name, key))
        .collect::<syn::Result<Vec<_>>>()?;
    Ok(quote! {
        impl #impl_generics ::factos::json::JsonEvent for #name #type_generics #where_clause {
            const EVENT_TYPES: &'static [&'static str] = &[#(#type_names),*];

            #[allow(unused_variables)]
            fn event_type(&self) -> &'static str {
                match self { #(#type_arms,)* }
            }

            #[allow(unused_variables)]
            fn tags(&self) -> ::std::vec::Vec<::std::string::String> {
                match self { #(#tag_arms,)* }
            }

            #[allow(unused_variables)]
            fn version(&self) -> u32 {
                match self { #(#version_arms,)* }
            }
        }

        impl #impl_generics #name #type_generics #where_clause {
            #(#constants)*
            #(#helpers)*
        }
    })
}

/// The tag and query helpers of one tag key.
fn tag_helpers(name: &Ident, key: &str) -> syn::Result<Tokens> {
    let base = key.replace(['-', '.', ' '], "_").to_lowercase();
    let tag_fn = syn::parse_str::<Ident>(&format!("{base}_tag")).map_err(|_| {
        syn::Error::new(
            Span::call_site(),
            format!("the tag key {key:?} does not make a function name (`{base}_tag`): use letters, digits, `_`, `-` or `.`"),
        )
    })?;
    let query_fn = format_ident!("{base}_query");
    let prefix = format!("{key}:");
    let tag_doc = format!("The tag `{key}:{{value}}` (a field marked `#[tag(\"{key}\")]`).");
    let query_doc = format!(
        "The events of [`{name}`]'s types that carry the tag `{key}:{{value}}`: the query of a decision about that `{key}`."
    );
    Ok(quote! {
        #[doc = #tag_doc]
        pub fn #tag_fn(value: impl ::std::fmt::Display) -> ::std::result::Result<::factos::Tag, ::factos::ValidationError> {
            ::factos::Tag::new(::std::format!("{}{}", #prefix, value))
        }

        #[doc = #query_doc]
        pub fn #query_fn(value: impl ::std::fmt::Display) -> ::std::result::Result<::factos::Query, ::factos::ValidationError> {
            let tag = Self::#tag_fn(value)?;
            let types = <Self as ::factos::json::JsonEvent>::EVENT_TYPES
                .iter()
                .map(|name| ::factos::EventType::new(*name))
                .collect::<::std::result::Result<::std::vec::Vec<_>, _>>()?;
            ::std::result::Result::Ok(::factos::Query::item(::factos::QueryItem::from_parts(types, [tag])))
        }
    })
}

fn declare(variant: &Variant) -> syn::Result<Declared> {
    let mut type_name = variant.ident.to_string();
    let mut version = 1u32;
    for attr in variant.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                type_name = value.value();
                check_name(&type_name, "type name", MAX_EVENT_TYPE_BYTES, value.span())
            } else if meta.path.is_ident("version") {
                let value: LitInt = meta.value()?.parse()?;
                version = value.base10_parse()?;
                if version == 0 {
                    return Err(syn::Error::new(value.span(), "payload versions start at 1"));
                }
                Ok(())
            } else {
                Err(meta
                    .error("unknown event attribute: expected `name = \"...\"` or `version = N`"))
            }
        })?;
    }
    check_name(
        &type_name,
        "type name",
        MAX_EVENT_TYPE_BYTES,
        variant.ident.span(),
    )?;
    let ident = variant.ident.clone();
    let mut tags = Vec::new();
    let pattern = match &variant.fields {
        Fields::Unit => quote!(Self::#ident),
        Fields::Named(fields) => {
            let mut bound = Vec::new();
            for field in &fields.named {
                if let Some(key) = tag_key(field)? {
                    let binding = field.ident.clone().ok_or_else(|| {
                        syn::Error::new(field.span(), "a named field without a name")
                    })?;
                    bound.push(binding.clone());
                    tags.push((key, binding));
                }
            }
            let unique: BTreeSet<&Ident> = bound.iter().collect();
            let unique = unique.into_iter();
            quote!(Self::#ident { #(#unique,)* .. })
        }
        Fields::Unnamed(fields) => {
            let mut parts = Vec::new();
            for (index, field) in fields.unnamed.iter().enumerate() {
                match tag_key(field)? {
                    Some(key) => {
                        let binding = format_ident!("field_{index}");
                        parts.push(quote!(#binding));
                        tags.push((key, binding));
                    }
                    None => parts.push(quote!(_)),
                }
            }
            quote!(Self::#ident(#(#parts),*))
        }
    };
    Ok(Declared {
        ident,
        type_name,
        version,
        tags,
        pattern,
    })
}

/// The key of a field's `#[tag("key")]`, if it has one.
fn tag_key(field: &syn::Field) -> syn::Result<Option<String>> {
    let mut key = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("tag")) {
        if key.is_some() {
            return Err(syn::Error::new(
                attr.span(),
                "one #[tag(\"key\")] per field: the field's value is one tag",
            ));
        }
        let value: LitStr = attr.parse_args().map_err(|_| {
            syn::Error::new(
                attr.span(),
                "expected #[tag(\"key\")]: the field's value becomes the tag `key:value`",
            )
        })?;
        check_name(&value.value(), "tag key", MAX_TAG_KEY_BYTES, value.span())?;
        key = Some(value.value());
    }
    Ok(key)
}

fn check_name(name: &str, what: &str, max_bytes: usize, span: Span) -> syn::Result<()> {
    if name.is_empty() {
        return Err(syn::Error::new(span, format!("an empty {what}")));
    }
    if name.len() > max_bytes {
        return Err(syn::Error::new(
            span,
            format!(
                "the {what} {name:?} is {} bytes, at most {max_bytes}",
                name.len()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(syn::Error::new(
            span,
            format!("the {what} {name:?} holds a control character"),
        ));
    }
    Ok(())
}

/// `AccountOpened` → `ACCOUNT_OPENED`.
fn screaming_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (index, c) in name.chars().enumerate() {
        if c.is_uppercase() && index > 0 {
            out.push('_');
        }
        out.extend(c.to_uppercase());
    }
    out
}
