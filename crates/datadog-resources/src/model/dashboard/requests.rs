//! What widgets ask for: named metric queries, formulas over them, and how the results are drawn
//! (markers, axes, conditional formats, sorting).

use serde::Deserialize;

use crate::model::shared::{Comparator, LiveSpan, Palette, SortOrder};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeseriesRequest {
    pub queries: Vec<MetricQuery>,
    #[serde(default)]
    pub formulas: Vec<Formula>,
    pub response_format: TimeseriesFormat,
    pub display_type: Option<DisplayType>,
    pub style: Option<RequestStyle>,
    pub on_right_yaxis: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeseriesFormat {
    Timeseries,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalarFormat {
    Scalar,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayType {
    Area,
    Bars,
    Line,
    Overlay,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStyle {
    pub palette: Option<String>,
    pub line_type: Option<LineType>,
    pub line_width: Option<LineWidth>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineType {
    Dashed,
    Dotted,
    Solid,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineWidth {
    Normal,
    Thick,
    Thin,
}

/// A horizontal line (`y = 0.25`) or band on a graph.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    pub value: String,
    /// Severity and line style, e.g. `error dashed`.
    pub display_type: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub include_zero: Option<bool>,
    pub label: Option<String>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub scale: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventOverlay {
    pub q: String,
    pub tags_execution: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetTime {
    pub live_span: LiveSpan,
}

/// A named metric query (`data_source: metrics`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    pub data_source: MetricsSource,
    pub name: String,
    pub query: String,
    /// How each series becomes one value in scalar requests (`percentile` for `pXX:` queries).
    pub aggregator: Option<QueryAggregator>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsSource {
    Metrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryAggregator {
    Avg,
    Min,
    Max,
    Sum,
    Last,
    Area,
    L2norm,
    Percentile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Formula {
    pub formula: String,
    pub alias: Option<String>,
    pub limit: Option<FormulaLimit>,
    #[serde(default)]
    pub conditional_formats: Vec<ConditionalFormat>,
    pub style: Option<FormulaStyle>,
    pub cell_display_mode: Option<CellDisplayMode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaLimit {
    pub count: Option<i64>,
    pub order: Option<SortOrder>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaStyle {
    pub palette: Option<String>,
    pub palette_index: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellDisplayMode {
    Number,
    Bar,
    Trend,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalFormat {
    pub comparator: Comparator,
    pub value: f64,
    pub palette: Palette,
    pub hide_value: Option<bool>,
    pub custom_bg_color: Option<String>,
    pub custom_fg_color: Option<String>,
}

/// A scalar request (query value, toplist, table): queries reduced to one value per group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarRequest {
    pub queries: Vec<MetricQuery>,
    #[serde(default)]
    pub formulas: Vec<Formula>,
    pub response_format: ScalarFormat,
    #[serde(default)]
    pub conditional_formats: Vec<ConditionalFormat>,
    pub sort: Option<SortBy>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortBy {
    pub count: Option<i64>,
    #[serde(default)]
    pub order_by: Vec<FormulaSort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaSort {
    #[serde(rename = "type")]
    pub kind: FormulaSortType,
    pub index: i64,
    pub order: SortOrder,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormulaSortType {
    Formula,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatmapRequest {
    pub request_type: HistogramRequestType,
    pub query: MetricQuery,
    pub style: Option<FormulaStyleOnly>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistogramRequestType {
    Histogram,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulaStyleOnly {
    pub palette: Option<String>,
}
