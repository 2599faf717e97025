//! The SQL signature of a plugin, derived from its Rust source.
//!
//! A plugin dylib carries no description of its signature (Arroyo's own
//! host parses the source too). We read the crate's `src/lib.rs` with
//! `syn`, find the one function marked `#[udf]` and map its argument and
//! return types: `i64` -> Int64, `f64` -> Float64, `&str` -> Utf8,
//! `Option<T>` -> nullable T, `Vec<T>` arguments -> an aggregate over T.

use std::path::Path;

use arrow::datatypes::DataType;

/// One argument or the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UdfType {
    pub data_type: DataType,
    pub nullable: bool,
}

/// What `#[udf] fn name(...) -> ...` declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UdfSignature {
    pub name: String,
    pub args: Vec<UdfType>,
    pub ret: UdfType,
    /// `Vec<T>` arguments: called once per group with all its values.
    pub aggregate: bool,
}

/// Why a plugin's source declares no usable signature. Every message starts
/// with the source file.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The file is not Rust.
    #[error("{file}: not valid Rust: {error}")]
    Syntax { file: String, error: syn::Error },

    /// No `#[udf]` function, several, or one of a shape we cannot call.
    #[error("{file}: {reason}")]
    Shape { file: String, reason: String },

    /// An argument or return type with no Arrow equivalent.
    #[error("{file}: `{function}`: {position}: {error}")]
    Type {
        file: String,
        function: String,
        /// `argument` or `return type`.
        position: &'static str,
        error: TypeError,
    },
}

/// A Rust type that has no Arrow equivalent in a plugin signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    #[error("unsupported type `{0}`")]
    Unsupported(String),
    #[error("`bool` is not supported by arroyo-udf-plugin 0.2.0; take an integer (0/1) instead")]
    Bool,
}

/// Parse the `#[udf]` function of `source` (the text of `file`).
pub fn parse_signature(source: &str, file: &Path) -> Result<UdfSignature, SignatureError> {
    let where_ = file.display().to_string();
    let shape = |reason: String| SignatureError::Shape {
        file: where_.clone(),
        reason,
    };
    let parsed = syn::parse_file(source).map_err(|error| SignatureError::Syntax {
        file: where_.clone(),
        error,
    })?;
    let mut udfs = parsed.items.iter().filter_map(|item| match item {
        syn::Item::Fn(f) if f.attrs.iter().any(is_udf_attribute) => Some(f),
        _ => None,
    });
    let function = udfs
        .next()
        .ok_or_else(|| shape("no function marked #[udf]".into()))?;
    if udfs.next().is_some() {
        return Err(shape(
            "more than one #[udf] function; a plugin crate holds exactly one (it exports one `__run`)"
                .into(),
        ));
    }
    let name = function.sig.ident.to_string();
    let type_error = |position: &'static str| {
        let (file, function) = (where_.clone(), name.clone());
        move |error| SignatureError::Type {
            file,
            function,
            position,
            error,
        }
    };
    if function.sig.asyncness.is_some() {
        return Err(shape(format!(
            "`{name}` is async; async UDFs are not supported"
        )));
    }
    let mut args = Vec::new();
    let mut vec_args = 0;
    for input in &function.sig.inputs {
        let syn::FnArg::Typed(arg) = input else {
            return Err(shape(format!("`{name}` takes `self`")));
        };
        let (ty, is_vec) = match vec_inner(&arg.ty) {
            Some(inner) => (inner, true),
            None => (arg.ty.as_ref(), false),
        };
        vec_args += usize::from(is_vec);
        args.push(rust_to_arrow(ty).map_err(type_error("argument"))?);
    }
    if args.is_empty() {
        return Err(shape(format!("`{name}` takes no arguments")));
    }
    if vec_args > 0 && vec_args != args.len() {
        return Err(shape(format!(
            "`{name}` mixes Vec and plain arguments; an aggregate UDF takes only Vec arguments"
        )));
    }
    let ret = match &function.sig.output {
        syn::ReturnType::Default => return Err(shape(format!("`{name}` returns nothing"))),
        syn::ReturnType::Type(_, ty) => rust_to_arrow(ty).map_err(type_error("return type"))?,
    };
    Ok(UdfSignature {
        name,
        args,
        ret,
        aggregate: vec_args > 0,
    })
}

fn is_udf_attribute(attribute: &syn::Attribute) -> bool {
    attribute
        .path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "udf")
}

/// `Vec<T>` -> `T`.
fn vec_inner(ty: &syn::Type) -> Option<&syn::Type> {
    generic_argument(ty, "Vec")
}

fn generic_argument<'a>(ty: &'a syn::Type, wrapper: &str) -> Option<&'a syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let segment = path.path.segments.last()?;
    if segment.ident != wrapper {
        return None;
    }
    let syn::PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return None;
    };
    match generics.args.first()? {
        syn::GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}

fn rust_to_arrow(ty: &syn::Type) -> Result<UdfType, TypeError> {
    if let Some(inner) = generic_argument(ty, "Option") {
        let inner = rust_to_arrow(inner)?;
        return Ok(UdfType {
            nullable: true,
            ..inner
        });
    }
    let data_type = match ty {
        syn::Type::Reference(reference) => match reference.elem.as_ref() {
            syn::Type::Path(p) if p.path.is_ident("str") => DataType::Utf8,
            syn::Type::Slice(s) if matches!(s.elem.as_ref(), syn::Type::Path(p) if p.path.is_ident("u8")) => {
                DataType::Binary
            }
            _ => {
                return Err(TypeError::Unsupported(format!(
                    "&{}",
                    quote_type(&reference.elem)
                )));
            }
        },
        syn::Type::Path(path) => {
            let name = path
                .path
                .segments
                .last()
                .map(|s| s.ident.to_string())
                .unwrap_or_default();
            match name.as_str() {
                "i8" => DataType::Int8,
                "i16" => DataType::Int16,
                "i32" => DataType::Int32,
                "i64" => DataType::Int64,
                "u8" => DataType::UInt8,
                "u16" => DataType::UInt16,
                "u32" => DataType::UInt32,
                "u64" => DataType::UInt64,
                "f32" => DataType::Float32,
                "f64" => DataType::Float64,
                "String" => DataType::Utf8,
                "bool" => {
                    return Err(TypeError::Bool);
                }
                other => return Err(TypeError::Unsupported(other.to_string())),
            }
        }
        other => return Err(TypeError::Unsupported(quote_type(other))),
    };
    Ok(UdfType {
        data_type,
        nullable: false,
    })
}

fn quote_type(ty: &syn::Type) -> String {
    use quote::ToTokens;
    ty.to_token_stream().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> Result<UdfSignature, String> {
        parse_signature(source, Path::new("lib.rs")).map_err(|e| e.to_string())
    }

    #[test]
    fn scalar_signature_with_nullable_arguments() {
        let signature = parse(
            "use arroyo_udf_plugin::udf;\n#[udf]\nfn score(rr: Option<i64>, acvpu: Option<&str>, t: f64) -> i64 { 0 }",
        )
        .unwrap();
        assert_eq!(signature.name, "score");
        assert!(!signature.aggregate);
        assert_eq!(
            signature.args,
            vec![
                UdfType {
                    data_type: DataType::Int64,
                    nullable: true
                },
                UdfType {
                    data_type: DataType::Utf8,
                    nullable: true
                },
                UdfType {
                    data_type: DataType::Float64,
                    nullable: false
                },
            ]
        );
        assert_eq!(
            signature.ret,
            UdfType {
                data_type: DataType::Int64,
                nullable: false
            }
        );
    }

    #[test]
    fn vec_arguments_make_an_aggregate() {
        let signature =
            parse("#[arroyo_udf_plugin::udf] fn spread(x: Vec<f64>) -> Option<f64> { None }")
                .unwrap();
        assert!(signature.aggregate);
        assert_eq!(signature.args[0].data_type, DataType::Float64);
        assert!(signature.ret.nullable);
    }

    #[test]
    fn clear_errors_for_what_cannot_be_a_plugin() {
        assert!(
            parse("fn helper() {}")
                .unwrap_err()
                .contains("no function marked #[udf]")
        );
        assert!(
            parse("#[udf] fn a(x: i64) -> i64 {x}\n#[udf] fn b(x: i64) -> i64 {x}")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            parse("#[udf] fn a(x: bool) -> i64 {0}")
                .unwrap_err()
                .contains("`bool` is not supported")
        );
        assert!(
            parse("#[udf] fn a(x: HashMap) -> i64 {0}")
                .unwrap_err()
                .contains("unsupported type `HashMap`")
        );
        assert!(
            parse("#[udf] fn a() -> i64 {0}")
                .unwrap_err()
                .contains("takes no arguments")
        );
        assert!(
            parse("#[udf] fn a(x: Vec<i64>, y: i64) -> i64 {0}")
                .unwrap_err()
                .contains("mixes")
        );
    }
}
