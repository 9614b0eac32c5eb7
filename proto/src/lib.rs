//! The `runtime.v1` gRPC API shared by `runtimed` and `runtimectl`, and the
//! framed protocol of a shim's control socket (which a local client may
//! speak directly, see `frame::Frame::AttachFds`).

pub mod frame;

/// Generated messages and services of package `runtime.v1`.
pub mod v1 {
    tonic::include_proto!("runtime.v1");

    /// Encoded descriptor set, served by the daemon's reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("runtime_v1_descriptor");
}
