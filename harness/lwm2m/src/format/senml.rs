//! SenML records shared by the JSON and CBOR encodings (RFC 8428).
