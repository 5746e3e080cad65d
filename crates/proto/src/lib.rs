//! Generated protobuf messages and gRPC clients/servers for every service, from the `.proto` files in the
//! repository's `proto/` folder (the single source of truth).
//!
//! - [`inference::v1`]: the public API of the gateway.
//! - [`features::v1`]: the feature-service.
//! - [`models::v1`]: the model-service.
//! - [`feast::types`]: Feast's `Value` and `EntityKey`, wire-compatible with Feast's own.
//!
//! [`FILE_DESCRIPTOR_SET`] feeds gRPC server reflection.
#![forbid(unsafe_code)]

pub mod feast {
    pub mod types {
        tonic::include_proto!("feast.types");
    }
}

pub mod features {
    pub mod v1 {
        tonic::include_proto!("features.v1");
    }
}

pub mod models {
    pub mod v1 {
        tonic::include_proto!("models.v1");
    }
}

pub mod inference {
    pub mod v1 {
        tonic::include_proto!("inference.v1");
    }
}

/// Encoded `FileDescriptorSet` of every proto, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
