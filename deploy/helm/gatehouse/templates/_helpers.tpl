{{/* Names and labels shared by every template. */}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.fullname" -}}
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

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The roles deployed: the gateway always, the RAG service when rag.enabled. */}}
{{- define "gatehouse.roles" -}}
{{- if .Values.rag.enabled }}gateway rag{{ else }}gateway{{ end }}
{{- end }}

{{/* What `serve --role` a component runs: the gateway is "all" without a RAG service. */}}
{{- define "gatehouse.serverRole" -}}
{{- if and (eq .component "gateway") (not .root.Values.rag.enabled) }}all{{ else }}{{ .component }}{{ end }}
{{- end }}

{{/* The gateway with gateway.persistence is a StatefulSet (a volume per replica); . is {root, component}. */}}
{{- define "gatehouse.statefulGateway" -}}
{{- if and (eq .component "gateway") .root.Values.gateway.persistence.enabled }}true{{ end }}
{{- end }}

{{- define "gatehouse.gatewayKind" -}}
{{- if include "gatehouse.statefulGateway" . }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{- define "gatehouse.image" -}}
{{- $image := mergeOverwrite (deepCopy .root.Values.image) (default dict .values.image) }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}

{{- define "gatehouse.secretName" -}}
{{- required "secrets.existingSecret is required: create a Secret with the master key (and database and Redis URLs) and name it here; see docs/deployment.md" .Values.secrets.existingSecret }}
{{- end }}

{{/* The database URL from the Secret: the migration Job and every server. */}}
{{- define "gatehouse.databaseEnv" -}}
{{- if .Values.secrets.databaseUrlKey }}
- name: GATEHOUSE_STORE__DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gatehouse.secretName" . }}
      key: {{ .Values.secrets.databaseUrlKey }}
{{- end }}
{{- end }}

{{- define "gatehouse.migrationsEnabled" -}}
{{- if and .Values.migrations.enabled .Values.secrets.databaseUrlKey }}true{{ end }}
{{- end }}

{{/* Environment of a server container; . is {root, component}. */}}
{{- define "gatehouse.serverEnv" -}}
{{- $root := .root }}
{{- $secret := include "gatehouse.secretName" $root }}
- name: GATEHOUSE_CONFIG
  value: /etc/gatehouse/gatehouse.yaml
- name: GATEHOUSE_MASTER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ required "secrets.masterKeyKey is required" $root.Values.secrets.masterKeyKey }}
{{- include "gatehouse.databaseEnv" $root }}
{{- with $root.Values.secrets.redisUrlKey }}
- name: GATEHOUSE_STORE__REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
- name: GATEHOUSE_CACHE__REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ . }}
{{- end }}
{{- if include "gatehouse.migrationsEnabled" $root }}
- name: GATEHOUSE_STORE__AUTO_UPGRADE
  value: "false"
{{- end }}
- name: GATEHOUSE_SERVER__SHUTDOWN_DELAY_SECONDS
  value: {{ $root.Values.shutdown.delaySeconds | quote }}
- name: GATEHOUSE_SERVER__DRAIN_TIMEOUT_SECONDS
  value: {{ $root.Values.shutdown.drainTimeoutSeconds | quote }}
{{- if and $root.Values.chromaUrl (ne (include "gatehouse.serverRole" .) "gateway") }}
- name: GATEHOUSE_RAG__CHROMA_URL
  value: {{ $root.Values.chromaUrl | quote }}
{{- end }}
{{- if eq .component "rag" }}
- name: GATEHOUSE_RAG__GATEWAY_URL
  value: {{ printf "http://%s-gateway:%v" (include "gatehouse.fullname" $root) $root.Values.service.port | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod security and the volumes every gatehouse container needs besides its data. */}}
{{- define "gatehouse.podSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
