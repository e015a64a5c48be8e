//! The `inventory.v1` gRPC contract (see `shared/API.md`): the generated messages, clients and
//! servers, and the encoded file descriptor set for server reflection.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod inventory {
    pub mod v1 {
        tonic::include_proto!("inventory.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `inventory.v1` file and its imports, for
/// `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("inventory_descriptor");
