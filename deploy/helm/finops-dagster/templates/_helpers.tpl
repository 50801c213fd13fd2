{{/* Names: <release>-finops-dagster, or the release name when it already holds the chart's name. */}}
{{- define "finops-dagster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "finops-dagster.fullname" -}}
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

{{- define "finops-dagster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: every pod of the release carries these (the default-deny policy selects them). */}}
{{- define "finops-dagster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "finops-dagster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "finops-dagster.labels" -}}
helm.sh/chart: {{ include "finops-dagster.chart" . }}
{{ include "finops-dagster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: finops-dagster
{{- end }}

{{- define "finops-dagster.serviceAccountName" -}}
{{- default (include "finops-dagster.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag (the appVersion by default). */}}
{{- define "finops-dagster.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "finops-dagster.settingsConfigMap" -}}
{{- printf "%s-settings" (include "finops-dagster.fullname" .) }}
{{- end }}

{{/* Values that contradict each other fail the install with the values' names. */}}
{{- define "finops-dagster.validate" -}}
{{- if and .Values.nightly.enabled .Values.dagster.scheduleEnabled }}
{{- fail "nightly.enabled=true and dagster.scheduleEnabled=true: the nightly run would start twice (the CronJob and Dagster's finops_nightly_schedule); keep one: set dagster.scheduleEnabled=false for the headless CronJob, or nightly.enabled=false under Dagster" }}
{{- end }}
{{- $apiMetrics := default "on" (get .Values.api.settings "FINOPS_API_METRICS") }}
{{- if and .Values.api.enabled .Values.monitoring.serviceMonitor.enabled (ne $apiMetrics "on") }}
{{- fail (printf "monitoring.serviceMonitor.enabled=true scrapes /metrics on the API's port, but api.settings.FINOPS_API_METRICS is %q: leave it unset (or \"on\"), or disable the ServiceMonitor" $apiMetrics) }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (lt (int .Values.api.autoscaling.maxReplicas) (int .Values.api.autoscaling.minReplicas)) }}
{{- fail "api.autoscaling.maxReplicas must be >= api.autoscaling.minReplicas" }}
{{- end }}
{{- end }}

{{/* The pod-level security context and the options every pod of the chart shares. */}}
{{- define "finops-dagster.podSpecCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The egress of a NetworkPolicy: one rule per destination (its CIDR and TCP ports); none: no egress. */}}
{{- define "finops-dagster.egress" -}}
{{- if not . }}
egress: []
{{- else }}
egress:
{{- range . }}
- to:
    - ipBlock:
        cidr: {{ .cidr | quote }}
  ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* envFrom of a secret reference by name. */}}
{{- define "finops-dagster.secretRef" -}}
- secretRef:
    name: {{ . | quote }}
{{- end }}

{{/* Accepted checkov finding, stated on each workload that takes Secrets as environment variables. */}}
{{- define "finops-dagster.checkovSecretsAsEnv" -}}
checkov.io/skip1: "CKV_K8S_35=the pipeline and the API read their settings, secrets included, from environment variables only (DESIGN.md section 7); the Secret is referenced by name, its values never appear in a manifest"
{{- end }}
