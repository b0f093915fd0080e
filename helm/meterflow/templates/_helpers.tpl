{{/* Names, labels and the pieces every MeterFlow Deployment shares. */}}

{{- define "meterflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meterflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "meterflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "meterflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meterflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meterflow.labels" -}}
helm.sh/chart: {{ include "meterflow.chart" . }}
{{ include "meterflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meterflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component: dict "root" $ "component" NAME */}}
{{- define "meterflow.componentLabels" -}}
{{ include "meterflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "meterflow.componentSelector" -}}
{{ include "meterflow.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "meterflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meterflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "meterflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret with the secret settings: the user's, or the chart's own. */}}
{{- define "meterflow.secretName" -}}
{{- default (printf "%s-secrets" (include "meterflow.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "meterflow.configMapName" -}}
{{- printf "%s-config" (include "meterflow.fullname" .) }}
{{- end }}

{{/* Ports inside every pod: the worker's web server, other services' health, the API. */}}
{{- define "meterflow.workerWebPort" -}}6066{{- end }}
{{- define "meterflow.healthPort" -}}8086{{- end }}
{{- define "meterflow.apiPort" -}}8080{{- end }}
{{- define "meterflow.stateDir" -}}/var/lib/meterflow{{- end }}

{{/* Where Kafka, the database and the broker are: bundled or external. */}}
{{- define "meterflow.kafkaBootstrap" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s-kafka:9092" .Release.Name }}
{{- else }}
{{- required "externalKafka.bootstrap is required when kafka.enabled is false" .Values.externalKafka.bootstrap }}
{{- end }}
{{- end }}

{{- define "meterflow.pgHost" -}}
{{- if .Values.timescaledb.enabled }}
{{- .Release.Name }}
{{- else }}
{{- required "externalDatabase.host is required when timescaledb.enabled is false" .Values.externalDatabase.host }}
{{- end }}
{{- end }}

{{- define "meterflow.mqttHost" -}}
{{- if .Values.mosquitto.enabled }}
{{- printf "%s-mosquitto" (include "meterflow.fullname" .) }}
{{- else }}
{{- required "externalMqtt.host is required when mosquitto.enabled is false" .Values.externalMqtt.host }}
{{- end }}
{{- end }}

{{/* Non-secret settings (ConfigMap data; the migration Job's inline environment). */}}
{{- define "meterflow.configData" -}}
METERFLOW_KAFKA_BOOTSTRAP: {{ include "meterflow.kafkaBootstrap" . | quote }}
METERFLOW_TOPIC_PARTITIONS: {{ .Values.settings.topicPartitions | quote }}
METERFLOW_TOPIC_REPLICATION: {{ .Values.settings.topicReplication | quote }}
METERFLOW_COMMIT_INTERVAL_S: {{ .Values.settings.commitIntervalSeconds | quote }}
METERFLOW_WORKER_ID: {{ .Values.settings.workerId | quote }}
METERFLOW_CONFIG_REFRESH_S: {{ .Values.settings.configRefreshSeconds | quote }}
METERFLOW_WORKER_SESSION_TIMEOUT_S: {{ .Values.settings.workerSessionTimeoutSeconds | quote }}
METERFLOW_PG_HOST: {{ include "meterflow.pgHost" . | quote }}
{{- if .Values.timescaledb.enabled }}
METERFLOW_PG_PORT: "5432"
METERFLOW_PG_USER: "postgres"
METERFLOW_PG_DATABASE: "postgres"
PGSSLMODE: "prefer"
{{- else }}
METERFLOW_PG_PORT: {{ .Values.externalDatabase.port | quote }}
METERFLOW_PG_USER: {{ .Values.externalDatabase.user | quote }}
METERFLOW_PG_DATABASE: {{ .Values.externalDatabase.database | quote }}
PGSSLMODE: {{ .Values.externalDatabase.sslmode | quote }}
{{- end }}
METERFLOW_MQTT_HOST: {{ include "meterflow.mqttHost" . | quote }}
METERFLOW_MQTT_PORT: {{ (ternary .Values.mosquitto.service.port .Values.externalMqtt.port .Values.mosquitto.enabled) | quote }}
{{- if include "meterflow.deviceIdentities" . }}
METERFLOW_MQTT_IDENTITY_CHECK: "true"
{{- else }}
METERFLOW_MQTT_USER: {{ .Values.externalMqtt.user | quote }}
METERFLOW_MQTT_IDENTITY_CHECK: {{ .Values.settings.mqttIdentityCheck | quote }}
{{- end }}
METERFLOW_STATE_DIR: {{ include "meterflow.stateDir" . | quote }}
METERFLOW_WORKER_WEB_HOST: "0.0.0.0"
METERFLOW_WORKER_WEB_PORT: {{ include "meterflow.workerWebPort" . | quote }}
METERFLOW_HEALTH_HOST: "0.0.0.0"
METERFLOW_HEALTH_PORT: {{ include "meterflow.healthPort" . | quote }}
METERFLOW_API_HOST: "0.0.0.0"
METERFLOW_API_PORT: {{ include "meterflow.apiPort" . | quote }}
METERFLOW_SQL_DIR: "/app/sql"
{{- range $name, $value := .Values.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Secret settings (Secret stringData) when the chart creates the Secret. */}}
{{- define "meterflow.secretData" -}}
{{- if not .Values.timescaledb.enabled }}
METERFLOW_PG_PASSWORD: {{ required "externalDatabase.password (or secrets.existingSecret) is required" .Values.externalDatabase.password | quote }}
{{- end }}
{{- if include "meterflow.deviceIdentities" . }}
{{- range $name := list "METERFLOW_MQTT_BRIDGE_PASSWORD" "METERFLOW_MQTT_DISPATCHER_PASSWORD" "METERFLOW_MQTT_MONITOR_PASSWORD" }}
{{- if not (hasKey $.Values.secretEnv $name) }}
{{- fail (printf "mosquitto.deviceIdentities needs secretEnv.%s (or secrets.existingSecret): the platform's own MQTT users" $name) }}
{{- end }}
{{- end }}
{{- else }}
METERFLOW_MQTT_PASSWORD: {{ required "externalMqtt.password (or secrets.existingSecret) is required: the bridge, the dispatcher and a bundled broker use it" .Values.externalMqtt.password | quote }}
{{- end }}
{{- range $name, $value := .Values.secretEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The settings of a `meterflow broker sync` container (the database, platform passwords). */}}
{{- define "meterflow.brokerSyncEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "meterflow.configMapName" . }}
  - secretRef:
      name: {{ include "meterflow.secretName" . }}
{{- with (include "meterflow.bundledDbEnv" . | trim) }}
env:
  {{- . | nindent 2 }}
{{- end }}
{{- end }}

{{/* "true" when the bundled broker gets its users and ACL from the database. */}}
{{- define "meterflow.deviceIdentities" -}}
{{- if and .Values.mosquitto.enabled .Values.mosquitto.deviceIdentities.enabled }}true{{ end }}
{{- end }}

{{/* The bundled database's password comes from the secret its chart creates. */}}
{{- define "meterflow.bundledDbEnv" -}}
{{- if .Values.timescaledb.enabled }}
- name: METERFLOW_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ tpl .Values.timescaledb.credentialsSecret . }}
      key: {{ .Values.timescaledb.passwordKey }}
{{- end }}
{{- end }}

{{- define "meterflow.checksums" -}}
checksum/config: {{ include "meterflow.configData" . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "meterflow.secretData" . | sha256sum }}
{{- end }}
{{- end }}

{{/* Wait for the schema before a component starts (the migration Job writes it). */}}
{{- define "meterflow.waitForSchema" -}}
{{- if .Values.migrations.waitForSchema }}
initContainers:
  - name: wait-for-schema
    image: {{ include "meterflow.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args: ["db", "wait", "--timeout", {{ .Values.migrations.waitTimeoutSeconds | quote }}]
    envFrom:
      - configMapRef:
          name: {{ include "meterflow.configMapName" . }}
      - secretRef:
          name: {{ include "meterflow.secretName" . }}
    {{- with (include "meterflow.bundledDbEnv" . | trim) }}
    env:
      {{- . | nindent 6 }}
    {{- end }}
    resources:
      {{- toYaml .Values.migrations.resources | nindent 6 }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: tmp, mountPath: /tmp}
{{- end }}
{{- end }}

{{/*
One MeterFlow Deployment. Call with a dict:
  root: $, component: name, values: the component's values, args: command line,
  replicas: count (ignored with autoscaling), port: container port, path: health path,
  strategy, env, mounts, volumes: (optional) Deployment strategy, container environment,
  volume mounts and volumes of the component
*/}}
{{- define "meterflow.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $ctx := dict "root" $root "component" .component }}
{{- $autoscaling := and (hasKey $v "autoscaling") $v.autoscaling.enabled }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "meterflow.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "meterflow.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not $autoscaling }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "meterflow.componentSelector" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "meterflow.componentSelector" $ctx | nindent 8 }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "meterflow.checksums" $root | nindent 8 }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "meterflow.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ default 30 $v.terminationGracePeriodSeconds }}
      {{- with (include "meterflow.waitForSchema" $root | trim) }}
      {{- . | nindent 6 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "meterflow.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ include "meterflow.configMapName" $root }}
            - secretRef:
                name: {{ include "meterflow.secretName" $root }}
          {{- $env := list }}
          {{- with (include "meterflow.bundledDbEnv" $root | trim) }}
          {{- $env = concat $env (fromYamlArray .) }}
          {{- end }}
          {{- with .env }}
          {{- $env = concat $env . }}
          {{- end }}
          {{- with $env }}
          env:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          startupProbe:
            httpGet: {path: {{ .path }}, port: http}
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: {{ .path }}, port: http}
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: {{ .path }}, port: http}
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: state, mountPath: {{ include "meterflow.stateDir" $root }}}
            {{- with .mounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - {name: tmp, emptyDir: {}}
        - {name: state, emptyDir: {}}
        {{- with .volumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $root.Values.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $root.Values.topologySpread.topologyKeys }}
        - maxSkew: {{ $root.Values.topologySpread.maxSkew }}
          topologyKey: {{ . }}
          whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "meterflow.componentSelector" $ctx | nindent 14 }}
        {{- end }}
      {{- end }}
{{- end }}

{{/* A PodDisruptionBudget and a HorizontalPodAutoscaler of one scaled component. */}}
{{- define "meterflow.scaling" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $ctx := dict "root" $root "component" .component }}
{{- if $v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "meterflow.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "meterflow.componentLabels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "meterflow.componentSelector" $ctx | nindent 6 }}
{{- end }}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "meterflow.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "meterflow.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "meterflow.fullname" $root }}-{{ .component }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
  {{- if .slowScaleDown }}
  behavior:
    scaleDown:
      # every change of a consumer group's members is a rebalance: scale down slowly
      stabilizationWindowSeconds: 600
      policies:
        - {type: Pods, value: 1, periodSeconds: 300}
  {{- end }}
{{- end }}
{{- end }}

{{/* The merchant's key files (payments.keysSecret) mounted read-only at /etc/meterflow/pay
in a component's pod: sets "mounts" and "volumes" of the deployment's dict. */}}
{{- define "meterflow.payKeys" -}}
{{- $p := .root.Values.payments }}
{{- if and $p.enabled $p.keysSecret }}
{{- $_ := set .target "mounts" (list (dict "name" "pay-keys" "mountPath" "/etc/meterflow/pay" "readOnly" true)) }}
{{- $_ := set .target "volumes" (list (dict "name" "pay-keys" "secret" (dict "secretName" $p.keysSecret "defaultMode" 256))) }}
{{- end }}
{{- end }}
