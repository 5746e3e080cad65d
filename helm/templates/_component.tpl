{{/*
The one generic component: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and
NetworkPolicy of one service. Args (a dict): root (the chart's context), key (values key), binary,
grpcService, c (the component's values).
*/}}

{{/* The environment a component's container runs with: every name is a variable the binary reads
     (its --help lists them). */}}
{{- define "pricing.env" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $tlsDir := "/etc/pricing/tls" }}
{{- include "pricing.datadogEnv" $root | trim | nindent 0 }}
# Serving and draining.
- name: LISTEN_ADDR
  value: "0.0.0.0:{{ .c.port }}"
- name: HEALTH_LISTEN_ADDR
  value: "0.0.0.0:{{ $v.probes.healthPort }}"
- name: SHUTDOWN_DRAIN_DELAY_MS
  value: {{ include "pricing.drainDelayMs" $root | quote }}
- name: SHUTDOWN_GRACE_MS
  value: {{ $v.shutdown.graceMs | quote }}
{{- if $v.tls.enabled }}
- name: TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" $tlsDir }}
- name: TLS_KEY_FILE
  value: {{ printf "%s/tls.key" $tlsDir }}
{{- if or (and $v.tls.mutual (ne .key "gateway")) (and $v.tls.gatewayClientAuth (eq .key "gateway")) }}
- name: TLS_CLIENT_CA_FILE
  value: {{ printf "%s/ca.crt" $tlsDir }}
{{- end }}
{{- end }}
{{- $redisSecret := include "pricing.redisSecretName" $root }}
{{- if eq .key "gateway" }}
- name: FEATURE_SERVICE_URL
  value: {{ include "pricing.url" (dict "root" $root "key" "featureService" "binary" "feature-service") | quote }}
- name: MODEL_SERVICE_URL
  value: {{ include "pricing.url" (dict "root" $root "key" "modelService" "binary" "model-service") | quote }}
{{- if $v.tls.enabled }}
- name: DOWNSTREAM_TLS_CA_FILE
  value: {{ printf "%s/ca.crt" $tlsDir }}
{{- if $v.tls.mutual }}
- name: DOWNSTREAM_TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" $tlsDir }}
- name: DOWNSTREAM_TLS_KEY_FILE
  value: {{ printf "%s/tls.key" $tlsDir }}
{{- end }}
{{- end }}
{{- if and $redisSecret $v.redis.quotes }}
- name: QUOTE_REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $redisSecret }}, key: {{ $v.redis.secretKey }}}}
{{- include "pricing.redisTlsEnv" (dict "root" $root "prefix" "QUOTE_") }}
{{- end }}
{{- end }}
{{- if eq .key "featureService" }}
- name: REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ $redisSecret }}, key: {{ $v.redis.secretKey }}}}
- name: FEAST_PROJECT
  value: {{ $v.features.feastProject | quote }}
{{- if include "pricing.registryConfigMap" $root }}
- name: FEATURE_REGISTRY
  value: /etc/pricing/registry/registry.json
{{- end }}
{{- include "pricing.redisTlsEnv" (dict "root" $root) }}
{{- end }}
{{- if and (eq .key "gateway") (include "pricing.trafficPolicyConfigMap" $root) }}
- name: TRAFFIC_POLICY_FILE
  value: /etc/pricing/traffic/policy.yaml
{{- end }}
{{- if eq .key "modelService" }}
- name: MODEL_REPOSITORY
  value: {{ include "pricing.modelRepository" $root | quote }}
{{- end }}
# The component's own settings (values: <component>.config).
{{- range $name, $value := .c.config }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The Datadog environment of every pod the chart runs: unified service tagging from the pod's own
     labels, the agent on the node, traces over OTLP, DogStatsD over UDP or the agent's socket. */}}
{{- define "pricing.datadogEnv" -}}
# Unified service tagging, from the pod's own labels.
- name: DD_ENV
  valueFrom: {fieldRef: {fieldPath: "metadata.labels['tags.datadoghq.com/env']"}}
- name: DD_SERVICE
  valueFrom: {fieldRef: {fieldPath: "metadata.labels['tags.datadoghq.com/service']"}}
- name: DD_VERSION
  valueFrom: {fieldRef: {fieldPath: "metadata.labels['tags.datadoghq.com/version']"}}
# The Datadog agent on this pod's node.
- name: DD_AGENT_HOST
  valueFrom: {fieldRef: {fieldPath: status.hostIP}}
- name: DD_ENTITY_ID
  valueFrom: {fieldRef: {fieldPath: metadata.uid}}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: "http://$(DD_AGENT_HOST):{{ .Values.datadog.otlpGrpcPort }}"
{{- if .Values.datadog.dogstatsdSocket.enabled }}
- name: DD_DOGSTATSD_URL
  value: "unix:///var/run/datadog/{{ .Values.datadog.dogstatsdSocket.file }}"
{{- else }}
- name: DD_DOGSTATSD_PORT
  value: {{ .Values.datadog.dogstatsdPort | quote }}
{{- end }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .Values.datadog.traceSampler | quote }}
{{- if ne (toString .Values.datadog.traceSamplerArg) "" }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.datadog.traceSamplerArg | quote }}
{{- end }}
- name: LOG_FORMAT
  value: json
{{- end }}

{{/* REDIS_TLS_* for what reads Redis, from the redis-tls mount. Args (a dict): root, and prefix for
     a binary that names its Redis settings with one (the gateway's quote store: QUOTE_). */}}
{{- define "pricing.redisTlsEnv" -}}
{{- $prefix := .prefix | default "" }}
{{- if .root.Values.redis.tls.caSecret }}
- name: {{ $prefix }}REDIS_TLS_CA_FILE
  value: /etc/pricing/redis-tls/ca.crt
{{- if .root.Values.redis.tls.clientCertificate }}
- name: {{ $prefix }}REDIS_TLS_CERT_FILE
  value: /etc/pricing/redis-tls/tls.crt
- name: {{ $prefix }}REDIS_TLS_KEY_FILE
  value: /etc/pricing/redis-tls/tls.key
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret with Redis's CA (and client certificate), when set: mount and volume. */}}
{{- define "pricing.redisTlsMount" -}}
{{- if .Values.redis.tls.caSecret }}
- name: redis-tls
  mountPath: /etc/pricing/redis-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "pricing.redisTlsVolume" -}}
{{- if .Values.redis.tls.caSecret }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.caSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* The agent's DogStatsD socket directory (when enabled): the container's mount, the pod's volume. */}}
{{- define "pricing.dogstatsdSocketMount" -}}
{{- if .Values.datadog.dogstatsdSocket.enabled }}
- name: dsdsocket
  mountPath: /var/run/datadog
  readOnly: true
{{- end }}
{{- end }}

{{- define "pricing.dogstatsdSocketVolume" -}}
{{- if .Values.datadog.dogstatsdSocket.enabled }}
# The agent's DogStatsD socket directory on the node.
- name: dsdsocket
  hostPath:
    path: {{ .Values.datadog.dogstatsdSocket.hostPath }}
    type: DirectoryOrCreate
{{- end }}
{{- end }}

{{/* Where the model-service finds its repository. */}}
{{- define "pricing.modelRepository" -}}
{{- if eq .Values.models.source "image" }}/models{{ else }}/var/lib/pricing/models{{ end }}
{{- end }}

{{- define "pricing.component" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $c := .c }}
{{- $name := include "pricing.componentName" . }}
{{- $facts := dict "root" $root "binary" .binary }}
{{- $probe := dict "port" "health" }}
{{- /* What connects to Redis: the feature-service, and the gateway when it keeps quotes there. */}}
{{- $readsRedis := or (eq .key "featureService") (and (eq .key "gateway") $v.redis.quotes) }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pricing.commonLabels" $root | nindent 4 }}
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
    {{- include "pricing.ustLabels" $facts | nindent 4 }}
  annotations:
    checkov.io/skip1: "CKV_K8S_43=Images are pinned by digest when image.digest is set; a tag alone is allowed so a first install needs no digest lookup."
    checkov.io/skip2: "CKV_K8S_15=IfNotPresent is deliberate: tags are immutable releases (or digests), and Always would make every pod start depend on the registry."
    checkov.io/skip3: "CKV_K8S_11=No CPU limit by default: CFS throttling adds tail latency to a latency-bound service; the request reserves its CPU, and resources.limits.cpu can be set."
    checkov.io/skip4: "CKV_K8S_35=The Redis URL comes from a secretKeyRef environment variable because the service reads REDIS_URL/QUOTE_REDIS_URL from its environment; the Secret itself is never in the manifest."
spec:
  {{- if not $c.autoscaling.enabled }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "pricing.selectorLabels" $facts | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: {{ $c.rollingUpdate.maxSurge }}
      maxUnavailable: {{ $c.rollingUpdate.maxUnavailable }}
  template:
    metadata:
      labels:
        {{- include "pricing.commonLabels" $root | nindent 8 }}
        {{- include "pricing.selectorLabels" $facts | nindent 8 }}
        {{- include "pricing.ustLabels" $facts | nindent 8 }}
        {{- if $v.datadog.admissionController }}
        admission.datadoghq.com/enabled: "true"
        {{- end }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Datadog log collection: the JSON lines on stdout, parsed by the `source` pipeline.
        ad.datadoghq.com/{{ .binary }}.logs: {{ list (dict "source" $v.datadog.logSource "service" .binary) | toJson | quote }}
        {{- if and (eq .key "featureService") $v.features.registry.json (not $v.features.registry.existingConfigMap) }}
        checksum/feature-registry: {{ $v.features.registry.json | sha256sum }}
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "pricing.serviceAccountName" $root }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $v.shutdown.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if and (eq .key "modelService") (eq $v.models.source "initContainer") }}
      initContainers:
        - name: fetch-models
          image: {{ required "models.initContainer.image is required when models.source is initContainer" $v.models.initContainer.image }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          {{- with $v.models.initContainer.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $v.models.initContainer.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            - name: MODEL_REPOSITORY
              value: /var/lib/pricing/models
            {{- with $v.models.initContainer.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {memory: 512Mi}
          volumeMounts:
            - name: models
              mountPath: /var/lib/pricing/models
      {{- end }}
      containers:
        - name: {{ .binary }}
          image: {{ include "pricing.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: ["/usr/local/bin/{{ .binary }}"]
          ports:
            - name: grpc
              containerPort: {{ $c.port }}
              protocol: TCP
            - name: health
              containerPort: {{ $v.probes.healthPort }}
              protocol: TCP
          env:
            {{- include "pricing.env" . | nindent 12 }}
          startupProbe:
            grpc:
              port: {{ $v.probes.healthPort }}
              service: {{ .grpcService }}
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
            timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
          readinessProbe:
            grpc:
              port: {{ $v.probes.healthPort }}
              service: {{ .grpcService }}
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
            timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
          livenessProbe:
            grpc:
              port: {{ $v.probes.healthPort }}
              service: liveness
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
            timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            # The root filesystem is read-only; /tmp is the one writable place.
            - name: tmp
              mountPath: /tmp
            {{- with include "pricing.dogstatsdSocketMount" $root }}{{ . | trim | nindent 12 }}{{- end }}
            {{- if $v.tls.enabled }}
            - name: tls
              mountPath: /etc/pricing/tls
              readOnly: true
            {{- end }}
            {{- if and (eq .key "featureService") (include "pricing.registryConfigMap" $root) }}
            - name: feature-registry
              mountPath: /etc/pricing/registry
              readOnly: true
            {{- end }}
            {{- if and (eq .key "gateway") (include "pricing.trafficPolicyConfigMap" $root) }}
            # A directory, not a subPath: only then does an edit of the ConfigMap reach the running pod.
            - name: traffic-policy
              mountPath: /etc/pricing/traffic
              readOnly: true
            {{- end }}
            {{- if $readsRedis }}
            {{- with include "pricing.redisTlsMount" $root }}{{ . | trim | nindent 12 }}{{- end }}
            {{- end }}
            {{- if and (eq .key "modelService") (ne $v.models.source "image") }}
            - name: models
              mountPath: /var/lib/pricing/models
              readOnly: true
              {{- if and (eq $v.models.source "persistentVolumeClaim") $v.models.persistentVolumeClaim.subPath }}
              subPath: {{ $v.models.persistentVolumeClaim.subPath }}
              {{- end }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with include "pricing.dogstatsdSocketVolume" $root }}{{ . | trim | nindent 8 }}{{- end }}
        {{- if $v.tls.enabled }}
        - name: tls
          secret:
            secretName: {{ include "pricing.tlsSecretName" (dict "root" $root "key" .key "binary" .binary) }}
            defaultMode: 0440
        {{- end }}
        {{- if and (eq .key "featureService") (include "pricing.registryConfigMap" $root) }}
        - name: feature-registry
          configMap:
            name: {{ include "pricing.registryConfigMap" $root }}
            items:
              - key: registry.json
                path: registry.json
        {{- end }}
        {{- if and (eq .key "gateway") (include "pricing.trafficPolicyConfigMap" $root) }}
        - name: traffic-policy
          configMap:
            name: {{ include "pricing.trafficPolicyConfigMap" $root }}
            items:
              - key: policy.yaml
                path: policy.yaml
        {{- end }}
        {{- if $readsRedis }}
        {{- with include "pricing.redisTlsVolume" $root }}{{ . | trim | nindent 8 }}{{- end }}
        {{- end }}
        {{- if eq .key "modelService" }}
        {{- if eq $v.models.source "persistentVolumeClaim" }}
        - name: models
          persistentVolumeClaim:
            claimName: {{ required "models.persistentVolumeClaim.claimName is required when models.source is persistentVolumeClaim" $v.models.persistentVolumeClaim.claimName }}
            readOnly: true
        {{- else if eq $v.models.source "initContainer" }}
        - name: models
          emptyDir:
            sizeLimit: {{ $v.models.initContainer.sizeLimit }}
        {{- end }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml $c.topologySpreadConstraints | nindent 8 }}
      {{- else }}
      # Replicas spread over nodes where possible, so one node lost takes one replica.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "pricing.selectorLabels" $facts | nindent 14 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pricing.commonLabels" $root | nindent 4 }}
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.service.type }}
  selector:
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $c.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
{{- if $c.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pricing.commonLabels" $root | nindent 4 }}
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $c.autoscaling.minReplicas }}
  maxReplicas: {{ $c.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $c.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    # Scale up at once on a spike; scale down slowly so a dip does not drop capacity the next spike needs.
    scaleUp:
      stabilizationWindowSeconds: 0
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- if $c.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pricing.commonLabels" $root | nindent 4 }}
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
spec:
  {{- if hasKey $c.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $c.podDisruptionBudget.minAvailable }}
  {{- else if hasKey $c.podDisruptionBudget "maxUnavailable" }}
  maxUnavailable: {{ $c.podDisruptionBudget.maxUnavailable }}
  {{- else }}
  maxUnavailable: 1
  {{- end }}
  selector:
    matchLabels:
      {{- include "pricing.selectorLabels" $facts | nindent 6 }}
{{- end }}
{{- if $v.networkPolicy.enabled }}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "pricing.commonLabels" $root | nindent 4 }}
    {{- include "pricing.selectorLabels" $facts | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "pricing.selectorLabels" $facts | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - port: grpc
          protocol: TCP
      {{- if eq .key "gateway" }}
      {{- with $v.networkPolicy.gatewayFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- else }}
      from:
        - podSelector:
            matchLabels:
              {{- include "pricing.selectorLabels" (dict "root" $root "binary" "gateway") | nindent 14 }}
      {{- end }}
    # Kubernetes' probes (from the node).
    - ports:
        - port: health
          protocol: TCP
{{- end }}
{{- end }}
