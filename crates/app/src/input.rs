//! Checks every front door applies to a request's JSON before reading it into a typed input.

use crate::error::AppError;

/// Every request body is a JSON object (serde would also read a struct from an array of its fields).
pub fn object_body(value: &serde_json::Value) -> Result<(), AppError> {
    if !value.is_object() {
        return Err(AppError::validation("the request body must be a JSON object", None));
    }
    // The one nested body: `{"command", "input"}` of a policy evaluation.
    match value.get("input") {
        Some(input) if !input.is_object() => Err(AppError::validation("input must be a JSON object", Some("input"))),
        _ => Ok(()),
    }
}

/// JSON Schema calls `3.0` an integer, serde does not: whole numbers written with a fraction become integers.
/// Text with NUL characters is refused (PostgreSQL cannot store it, and no name or value needs it).
pub fn normalize(value: &mut serde_json::Value) -> Result<(), AppError> {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                *value = if f < 0.0 { Value::from(f as i64) } else { Value::from(f as u64) };
            }
            Ok(())
        }
        Value::String(s) if s.contains('\0') => Err(no_nul()),
        Value::Array(items) => items.iter_mut().try_for_each(normalize),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                return Err(no_nul());
            }
            map.values_mut().try_for_each(normalize)
        }
        _ => Ok(()),
    }
}

fn no_nul() -> AppError {
    AppError::validation("text may not contain NUL characters", None)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn a_whole_number_near_two_to_the_52_written_with_a_fraction_becomes_that_integer() {
        // Without serde_json's `float_roundtrip`, this parses one ULP off (…201.5) and stayed a float.
        let mut value: serde_json::Value = serde_json::from_str(r#"{"expected_version": 4355529452251202.0}"#).unwrap();
        normalize(&mut value).unwrap();
        assert_eq!(value["expected_version"].as_u64(), Some(4_355_529_452_251_202));
    }

    #[test]
    fn a_number_with_a_real_fraction_stays_a_float() {
        let mut value = serde_json::json!({"n": 2.5});
        normalize(&mut value).unwrap();
        assert!(value["n"].is_f64());
    }
}
