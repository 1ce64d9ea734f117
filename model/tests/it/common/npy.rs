//! A minimal reader for the fixtures' `.npy` files: version 1.0–3.0 headers, little-endian
//! float32 (`<f4`), C order. Anything else is a test failure, not a silent misread.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// The shape and the values (row-major) of a float32 `.npy` file.
pub fn read_npy_f32(path: impl AsRef<Path>) -> (Vec<usize>, Vec<f32>) {
    let path = path.as_ref();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not a .npy file",
        path.display()
    );
    let major = bytes[6];
    // Version 1 has a u16 header length; versions 2 and 3 a u32.
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => (
            u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
            12,
        ),
        v => panic!("{}: unsupported .npy version {v}", path.display()),
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    let field = |name: &str| -> &str {
        let key = format!("'{name}':");
        let at = header
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {header}"))
            + key.len();
        header[at..].trim_start()
    };
    assert!(
        field("descr").starts_with("'<f4'"),
        "{}: dtype {header}",
        path.display()
    );
    assert!(
        field("fortran_order").starts_with("False"),
        "{}: Fortran order",
        path.display()
    );
    let shape_text = field("shape");
    let shape: Vec<usize> = shape_text[1..shape_text.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = &bytes[header_start + header_len..];
    let count: usize = shape.iter().product();
    assert_eq!(data.len(), 4 * count, "{}: {header}", path.display());
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (shape, values)
}
