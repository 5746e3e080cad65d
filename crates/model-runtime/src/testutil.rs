//! Test fixtures built in code: tiny ONNX graphs (written with tract-onnx's own protobuf types, so no
//! binary files or Python are needed) and manifests, laid out as a repository in a temporary folder.

use std::path::Path;

use prost::Message;
use serde_json::{Value, json};
use tract_onnx::pb::{
    self, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, tensor_shape_proto::Dimension, tensor_shape_proto::dimension, type_proto,
};

/// `output = input · weights + bias`: input float32 `[N, rows(weights)]` named `input`, output float32
/// `[N, cols]` named `output` (or `[N]` when `flat`, through a Reshape).
pub(crate) struct Linear {
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    pub flat: bool,
}

impl Linear {
    /// Two inputs, two outputs: `output[:, 0] = a + 2b + 0.5`, `output[:, 1] = a - b`.
    pub fn two_by_two() -> Self {
        Self {
            weights: vec![vec![1.0, 1.0], vec![2.0, -1.0]],
            bias: vec![0.5, 0.0],
            flat: false,
        }
    }

    pub fn onnx(&self) -> Vec<u8> {
        let width = self.weights.len();
        let cols = self.bias.len();
        let weights: Vec<f32> = self.weights.iter().flatten().copied().collect();
        let mut nodes = vec![
            node("matmul", "MatMul", &["input", "weights"], &["product"]),
            node(
                "add",
                "Add",
                &["product", "bias"],
                &[if self.flat { "sum" } else { "output" }],
            ),
        ];
        let mut initializer = vec![
            tensor("weights", &[width as i64, cols as i64], weights),
            tensor("bias", &[cols as i64], self.bias.clone()),
        ];
        let output_dims: Vec<Dimension> = if self.flat {
            nodes.push(node("reshape", "Reshape", &["sum", "flat_shape"], &["output"]));
            initializer.push(TensorProto {
                name: "flat_shape".into(),
                dims: vec![1],
                data_type: pb::tensor_proto::DataType::Int64 as i32,
                int64_data: vec![-1],
                ..Default::default()
            });
            vec![param("N")]
        } else {
            vec![param("N"), fixed(cols as i64)]
        };
        let graph = GraphProto {
            name: "linear".into(),
            node: nodes,
            initializer,
            input: vec![value_info("input", vec![param("N"), fixed(width as i64)])],
            output: vec![value_info("output", output_dims)],
            ..Default::default()
        };
        ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 14,
            }],
            producer_name: "model-runtime tests".into(),
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data,
        ..Default::default()
    }
}

fn param(name: &str) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimParam(name.into())),
        ..Default::default()
    }
}

fn fixed(size: i64) -> Dimension {
    Dimension {
        value: Some(dimension::Value::DimValue(size)),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: Vec<Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A manifest for [`Linear::two_by_two`]: inputs `a` (default 1) and `b` (default 2); `score` is column
/// 0 clamped to [0, 10]; `tier` bands `score` at 2 and 5.
pub(crate) fn manifest(model: &str, version: &str) -> Value {
    json!({
        "model": model,
        "version": version,
        "description": "test model",
        "created_at": "2026-11-25T00:00:00Z",
        "input_tensor": "input",
        "inputs": [
            {"name": "a", "default": 1.0, "baseline": {"edges": [0.0, 1.0, 2.0], "fractions": [0.5, 0.5]}},
            {"name": "b", "default": 2.0}
        ],
        "outputs": [
            {"name": "score", "tensor": "output", "column": 0, "clamp": [0.0, 10.0]},
            {"name": "spread", "tensor": "output", "column": 1}
        ],
        "derived": [
            {"name": "tier", "from": "score",
             "bands": [{"upper": 2.0, "value": 1.0}, {"upper": 5.0, "value": 2.0}, {"upper": null, "value": 3.0}]}
        ],
        "metrics": {"auc": 0.5, "training_rows": 10},
        "some_future_field": {"ignored": true}
    })
}

/// [`manifest`] with a probe row that [`Linear::two_by_two`] scores as recorded.
pub(crate) fn manifest_with_probe(model: &str, version: &str) -> Value {
    let mut manifest = manifest(model, version);
    manifest["probes"] = json!([
        {"features": {"a": 2.0, "b": 1.0}, "outputs": {"score": 4.5, "spread": 1.0}}
    ]);
    manifest
}

/// Writes `<root>/<model>/<version>/{model.onnx, manifest.json}`.
pub(crate) fn write_version(root: &Path, model: &str, version: &str, onnx: &[u8], manifest: &Value) {
    let dir = root.join(model).join(version);
    std::fs::create_dir_all(&dir).expect("create version folder");
    std::fs::write(dir.join("model.onnx"), onnx).expect("write model.onnx");
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("write manifest.json");
}

/// Writes a working [`Linear::two_by_two`] version.
pub(crate) fn write_good_version(root: &Path, model: &str, version: &str) {
    write_version(
        root,
        model,
        version,
        &Linear::two_by_two().onnx(),
        &manifest(model, version),
    );
}
