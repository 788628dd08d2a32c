//! Exposition: the text encoders and the HTTP endpoint (not written yet).
