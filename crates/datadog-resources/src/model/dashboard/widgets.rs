//! The widget definitions in use, one struct per `type`.

use serde::Deserialize;

use super::{
    Axis, EventOverlay, HeatmapRequest, Marker, ScalarRequest, TimeseriesRequest, Widget, WidgetTime,
};
use crate::model::shared::TextAlign;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDefinition {
    pub title: Option<String>,
    /// Groups are always `ordered` inside.
    pub layout_type: GroupLayoutType,
    pub widgets: Vec<Widget>,
    pub show_title: Option<bool>,
    pub background_color: Option<String>,
    pub title_align: Option<TextAlign>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupLayoutType {
    Ordered,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteDefinition {
    pub content: String,
    pub background_color: Option<String>,
    pub font_size: Option<String>,
    pub text_align: Option<TextAlign>,
    pub vertical_align: Option<VerticalAlign>,
    pub show_tick: Option<bool>,
    pub tick_edge: Option<TickEdge>,
    pub tick_pos: Option<String>,
    pub has_padding: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerticalAlign {
    Center,
    Top,
    Bottom,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TickEdge {
    Bottom,
    Left,
    Right,
    Top,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeseriesDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<TimeseriesRequest>,
    #[serde(default)]
    pub markers: Vec<Marker>,
    pub yaxis: Option<Axis>,
    pub right_yaxis: Option<Axis>,
    /// Event overlays.
    #[serde(default)]
    pub events: Vec<EventOverlay>,
    pub show_legend: Option<bool>,
    pub legend_layout: Option<LegendLayout>,
    #[serde(default)]
    pub legend_columns: Vec<LegendColumn>,
    pub time: Option<WidgetTime>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegendLayout {
    Auto,
    Horizontal,
    Vertical,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegendColumn {
    Value,
    Avg,
    Sum,
    Min,
    Max,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryValueDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<ScalarRequest>,
    pub precision: Option<i64>,
    pub custom_unit: Option<String>,
    pub autoscale: Option<bool>,
    pub text_align: Option<TextAlign>,
    pub time: Option<WidgetTime>,
}

/// Distributions over time: `request_type: histogram` with a `histogram:<metric>{...}` query, which
/// draws the metric's raw points (the way Datadog shows distribution metrics).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatmapDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<HeatmapRequest>,
    pub xaxis: Option<HeatmapXAxis>,
    pub yaxis: Option<Axis>,
    #[serde(default)]
    pub markers: Vec<Marker>,
    #[serde(default)]
    pub events: Vec<EventOverlay>,
    pub show_legend: Option<bool>,
    pub time: Option<WidgetTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeatmapXAxis {
    pub num_buckets: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToplistDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<ScalarRequest>,
    pub time: Option<WidgetTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<ScalarRequest>,
    pub has_search_bar: Option<SearchBar>,
    pub time: Option<WidgetTime>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchBar {
    Always,
    Never,
    Auto,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTimelineDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    /// An event search (`source:kubernetes event_reason:BackOff`, `tags:event:model_version_loaded`).
    pub query: String,
    pub tags_execution: Option<String>,
    pub time: Option<WidgetTime>,
}

/// The status of a service check (e.g. `redis.can_connect`) per group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckStatusDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub check: String,
    pub grouping: CheckGrouping,
    #[serde(default)]
    pub group_by: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub group: Option<String>,
    pub time: Option<WidgetTime>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckGrouping {
    Check,
    Cluster,
}

/// Monitors and their states, selected by a monitor search (`tag:"team:pricing"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSummaryDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub query: String,
    pub summary_type: Option<SummaryType>,
    pub display_format: Option<SummaryDisplayFormat>,
    pub color_preference: Option<ColorPreference>,
    pub hide_zero_counts: Option<bool>,
    pub show_last_triggered: Option<bool>,
    pub show_priority: Option<bool>,
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryType {
    Monitors,
    Groups,
    Combined,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub enum SummaryDisplayFormat {
    #[serde(rename = "counts")]
    Counts,
    #[serde(rename = "countsAndList")]
    CountsAndList,
    #[serde(rename = "list")]
    List,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorPreference {
    Background,
    Text,
}

/// SLOs selected by a search (`service:gateway`), with their status and error budget.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloListDefinition {
    pub title: Option<String>,
    pub title_size: Option<String>,
    pub title_align: Option<TextAlign>,
    pub description: Option<String>,
    pub requests: Vec<SloListRequest>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloListRequest {
    pub request_type: SloListRequestType,
    pub query: SloListQuery,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloListRequestType {
    SloList,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloListQuery {
    pub query_string: String,
    pub limit: Option<i64>,
}
