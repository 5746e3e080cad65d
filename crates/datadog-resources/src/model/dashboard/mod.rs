//! Dashboards: the body of `POST /api/v1/dashboard` (Datadog's `Dashboard` schema without its
//! read-only fields), with the widget types this repository uses, each in the formula-and-functions
//! request form (named metric queries; the deprecated `q` strings are not accepted, so every query has
//! a name the checker can report).

mod requests;
mod widgets;

use serde::Deserialize;

pub use self::{requests::*, widgets::*};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    pub title: String,
    pub description: Option<String>,
    pub layout_type: LayoutType,
    /// Only for `ordered` layouts: `auto` (widgets carry no layout) or `fixed` (every widget does).
    pub reflow_type: Option<ReflowType>,
    #[serde(default)]
    pub template_variables: Vec<TemplateVariable>,
    pub widgets: Vec<Widget>,
    #[serde(default)]
    pub notify_list: Vec<String>,
    /// Team ownership, `team:<name>` only.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutType {
    Ordered,
    Free,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReflowType {
    Auto,
    Fixed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateVariable {
    pub name: String,
    /// The tag key the variable filters on (`$env` in a query means `env:<value>`).
    pub prefix: Option<String>,
    #[serde(default)]
    pub available_values: Vec<String>,
    #[serde(default)]
    pub defaults: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub definition: WidgetDefinition,
    /// Required on `free` layouts and `fixed` reflow, absent with `auto` reflow.
    pub layout: Option<WidgetLayout>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetLayout {
    pub x: i64,
    pub y: i64,
    pub width: i64,
    pub height: i64,
    pub is_column_break: Option<bool>,
}

/// The widget types in use, by their `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WidgetDefinition {
    Group(GroupDefinition),
    Note(NoteDefinition),
    Timeseries(TimeseriesDefinition),
    QueryValue(QueryValueDefinition),
    Heatmap(HeatmapDefinition),
    Toplist(ToplistDefinition),
    QueryTable(TableDefinition),
    /// Only on `free` layout dashboards (Datadog's rule).
    EventTimeline(EventTimelineDefinition),
    CheckStatus(CheckStatusDefinition),
    ManageStatus(MonitorSummaryDefinition),
    SloList(SloListDefinition),
}

impl WidgetDefinition {
    /// The widget's title, when it has one.
    pub fn title(&self) -> Option<&str> {
        match self {
            WidgetDefinition::Group(d) => d.title.as_deref(),
            WidgetDefinition::Note(_) => None,
            WidgetDefinition::Timeseries(d) => d.title.as_deref(),
            WidgetDefinition::QueryValue(d) => d.title.as_deref(),
            WidgetDefinition::Heatmap(d) => d.title.as_deref(),
            WidgetDefinition::Toplist(d) => d.title.as_deref(),
            WidgetDefinition::QueryTable(d) => d.title.as_deref(),
            WidgetDefinition::EventTimeline(d) => d.title.as_deref(),
            WidgetDefinition::CheckStatus(d) => d.title.as_deref(),
            WidgetDefinition::ManageStatus(d) => d.title.as_deref(),
            WidgetDefinition::SloList(d) => d.title.as_deref(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            WidgetDefinition::Group(_) => "group",
            WidgetDefinition::Note(_) => "note",
            WidgetDefinition::Timeseries(_) => "timeseries",
            WidgetDefinition::QueryValue(_) => "query_value",
            WidgetDefinition::Heatmap(_) => "heatmap",
            WidgetDefinition::Toplist(_) => "toplist",
            WidgetDefinition::QueryTable(_) => "query_table",
            WidgetDefinition::EventTimeline(_) => "event_timeline",
            WidgetDefinition::CheckStatus(_) => "check_status",
            WidgetDefinition::ManageStatus(_) => "manage_status",
            WidgetDefinition::SloList(_) => "slo_list",
        }
    }

    /// The metric queries the widget runs (none for notes, groups, events and status widgets).
    pub fn metric_queries(&self) -> Vec<&MetricQuery> {
        match self {
            WidgetDefinition::Timeseries(d) => d.requests.iter().flat_map(|r| &r.queries).collect(),
            WidgetDefinition::QueryValue(d) => d.requests.iter().flat_map(|r| &r.queries).collect(),
            WidgetDefinition::Heatmap(d) => d.requests.iter().map(|r| &r.query).collect(),
            WidgetDefinition::Toplist(d) => d.requests.iter().flat_map(|r| &r.queries).collect(),
            WidgetDefinition::QueryTable(d) => d.requests.iter().flat_map(|r| &r.queries).collect(),
            _ => Vec::new(),
        }
    }

    /// The formulas over those queries, with the names of the queries each request defines.
    pub fn formulas(&self) -> Vec<(&[MetricQuery], &[Formula])> {
        match self {
            WidgetDefinition::Timeseries(d) => d
                .requests
                .iter()
                .map(|r| (&r.queries[..], &r.formulas[..]))
                .collect(),
            WidgetDefinition::QueryValue(d) => d
                .requests
                .iter()
                .map(|r| (&r.queries[..], &r.formulas[..]))
                .collect(),
            WidgetDefinition::Toplist(d) => d
                .requests
                .iter()
                .map(|r| (&r.queries[..], &r.formulas[..]))
                .collect(),
            WidgetDefinition::QueryTable(d) => d
                .requests
                .iter()
                .map(|r| (&r.queries[..], &r.formulas[..]))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Event searches the widget runs (timelines and event overlays).
    pub fn event_queries(&self) -> Vec<&str> {
        match self {
            WidgetDefinition::EventTimeline(d) => vec![d.query.as_str()],
            WidgetDefinition::Timeseries(d) => d.events.iter().map(|e| e.q.as_str()).collect(),
            WidgetDefinition::Heatmap(d) => d.events.iter().map(|e| e.q.as_str()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Every widget of the dashboard, groups flattened, with the title of the group each sits in.
pub fn all_widgets(widgets: &[Widget]) -> Vec<(&Widget, Option<&str>)> {
    let mut out = Vec::new();
    for widget in widgets {
        out.push((widget, None));
        if let WidgetDefinition::Group(group) = &widget.definition {
            out.extend(group.widgets.iter().map(|w| (w, group.title.as_deref())));
        }
    }
    out
}
