{{/*
Shared names, labels and settings. Each component (gateway, feature-service, model-service) is rendered by
the one generic template in _component.tpl from its values entry and the facts below.
*/}}

{{/* The three components: values key -> binary (also the container, the Datadog service and the
     component label), the gRPC service its readiness probe asks for. */}}
{{- define "pricing.componentFacts" -}}
gateway:
  binary: gateway
  grpcService: inference.v1.InferenceService
featureService:
  binary: feature-service
  grpcService: features.v1.FeatureService
modelService:
  binary: model-service
  grpcService: models.v1.ModelService
{{- end }}

{{- define "pricing.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>, or <release>-pricing-inference when the release name does not already say it. */}}
{{- define "pricing.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Name of a component's objects: <fullname>-<binary>. Args: root, binary. */}}
{{- define "pricing.componentName" -}}
{{- printf "%s-%s" (include "pricing.fullname" .root) .binary | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag, which is also the `version` of unified service tagging. */}}
{{- define "pricing.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "pricing.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository (include "pricing.version" .) .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "pricing.version" .) }}
{{- end }}
{{- end }}

{{/* Labels of objects that belong to no one component. */}}
{{- define "pricing.labels" -}}
{{ include "pricing.commonLabels" . }}
app.kubernetes.io/name: {{ include "pricing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* What every object carries besides its selector labels. */}}
{{- define "pricing.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ include "pricing.version" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pricing-inference
{{- end }}

{{/* Selector labels of one component. Args: root, binary. */}}
{{- define "pricing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pricing.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .binary }}
{{- end }}

{{/* Unified service tagging labels of one component. Args: root, binary. */}}
{{- define "pricing.ustLabels" -}}
tags.datadoghq.com/env: {{ .root.Values.environment | quote }}
tags.datadoghq.com/service: {{ .binary | quote }}
tags.datadoghq.com/version: {{ include "pricing.version" .root | quote }}
{{- end }}

{{- define "pricing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- .Values.serviceAccount.name | default (include "pricing.fullname" .) }}
{{- else }}
{{- .Values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* SHUTDOWN_DRAIN_DELAY_MS: as set, or the readiness period plus two seconds, so endpoints stop routing
     here before the listener closes. */}}
{{- define "pricing.drainDelayMs" -}}
{{- if ne (toString .Values.shutdown.drainDelayMs) "" }}
{{- .Values.shutdown.drainDelayMs | int }}
{{- else }}
{{- add (mul .Values.probes.readiness.periodSeconds .Values.probes.readiness.failureThreshold 1000) 2000 }}
{{- end }}
{{- end }}

{{/* Refuses shutdown settings that cannot work: the drain must outlast the readiness probe, and drain plus
     grace must end before Kubernetes kills the pod (leaving two seconds for the last telemetry flush). */}}
{{- define "pricing.checkShutdown" -}}
{{- $drain := include "pricing.drainDelayMs" . | int }}
{{- $grace := .Values.shutdown.graceMs | int }}
{{- $kill := mul .Values.shutdown.terminationGracePeriodSeconds 1000 }}
{{- $readiness := mul .Values.probes.readiness.periodSeconds .Values.probes.readiness.failureThreshold 1000 }}
{{- if le $drain $readiness }}
{{- fail (printf "shutdown.drainDelayMs (%d) must be above the readiness period × failureThreshold (%d ms), or the listener closes while endpoints still route here" $drain $readiness) }}
{{- end }}
{{- if gt (add $drain $grace 2000) $kill }}
{{- fail (printf "shutdown.drainDelayMs (%d) + shutdown.graceMs (%d) + 2000 ms for the last telemetry flush exceed shutdown.terminationGracePeriodSeconds (%d ms): Kubernetes would kill the pod mid-drain" $drain $grace $kill) }}
{{- end }}
{{- end }}

{{/* The Secret holding the Redis URL, or nothing when Redis is not configured. */}}
{{- define "pricing.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if .Values.redis.url }}
{{- printf "%s-redis" (include "pricing.fullname" .) }}
{{- end }}
{{- end }}

{{/* A component's TLS Secret. Args: root, key, binary. */}}
{{- define "pricing.tlsSecretName" -}}
{{- $explicit := get .root.Values.tls.secrets .key }}
{{- $explicit | default (printf "%s-tls" (include "pricing.componentName" .)) }}
{{- end }}

{{/* A component's address as the gateway dials it. Args: root, key, binary. */}}
{{- define "pricing.url" -}}
{{- $values := get .root.Values .key }}
{{- printf "%s://%s.%s.svc:%d" (ternary "https" "http" .root.Values.tls.enabled) (include "pricing.componentName" .) .root.Release.Namespace ($values.port | int) }}
{{- end }}

{{/* Whether the chart has a feature registry to mount. */}}
{{- define "pricing.trafficPolicyConfigMap" -}}
{{- if .Values.trafficPolicy.existingConfigMap }}
{{- .Values.trafficPolicy.existingConfigMap }}
{{- else if .Values.trafficPolicy.policy }}
{{- printf "%s-traffic-policy" (include "pricing.fullname" .) }}
{{- end }}
{{- end }}

{{- define "pricing.registryConfigMap" -}}
{{- if .Values.features.registry.existingConfigMap }}
{{- .Values.features.registry.existingConfigMap }}
{{- else if .Values.features.registry.json }}
{{- printf "%s-feature-registry" (include "pricing.fullname" .) }}
{{- end }}
{{- end }}
