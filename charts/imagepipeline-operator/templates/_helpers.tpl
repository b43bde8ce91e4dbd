{{/* The chart name, or nameOverride. */}}
{{- define "imagepipeline-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: fullnameOverride, the release name when it
contains the chart name, else <release>-<chart>. */}}
{{- define "imagepipeline-operator.fullname" -}}
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

{{- define "imagepipeline-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selects the operator's pods; never changes after install. */}}
{{- define "imagepipeline-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imagepipeline-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The standard labels of every object of the chart. */}}
{{- define "imagepipeline-operator.labels" -}}
helm.sh/chart: {{ include "imagepipeline-operator.chart" . }}
{{ include "imagepipeline-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: imagepipeline
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "imagepipeline-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imagepipeline-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader Lease, one per release, in the release namespace. */}}
{{- define "imagepipeline-operator.leaseName" -}}
{{- include "imagepipeline-operator.fullname" . }}
{{- end }}

{{/* The operator's permissions on the pipelines and the objects of their
services. Granted by a ClusterRole, or by a Role in watchNamespace.
operator/tests/controller.rs derives the permissions from the calls the
operator makes and fails when these rules lack one or grant more. */}}
{{- define "imagepipeline-operator.pipelineRules" -}}
- apiGroups: [imagepipeline.io]
  resources: [imagepipelines]
  verbs: [list, watch, patch]
- apiGroups: [imagepipeline.io]
  resources: [imagepipelines/status]
  verbs: [patch]
# Owner references that block the owner's deletion need this.
- apiGroups: [imagepipeline.io]
  resources: [imagepipelines/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, serviceaccounts, services]
  verbs: [list, watch, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, patch, delete]
# The Secrets a spec names (Redshift admin user, upload API keys) may be any
# Secret of the pipeline's namespace; the API keys Secret the operator
# generates is created.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if .Values.metrics.podMonitors.enabled }}
# A PodMonitor per pipeline, server-side applied; never read, listed or
# deleted (its owner reference has it collected with the pipeline).
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors]
  verbs: [patch]
{{- end }}
{{- end }}

{{/* A map of labels as key=value pairs joined by commas, sorted by key. */}}
{{- define "imagepipeline-operator.podMonitorLabels" -}}
{{- $pairs := list }}
{{- range $key, $value := . }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
