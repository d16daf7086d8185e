{{/*
Names and labels shared by every object of the release.
*/}}

{{/* The chart's name, at most 63 characters. */}}
{{- define "oncehook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's, with the chart's name unless it already holds it. */}}
{{- define "oncehook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "oncehook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "oncehook.labels" -}}
helm.sh/chart: {{ include "oncehook.chart" . }}
app.kubernetes.io/name: {{ include "oncehook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "oncehook.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The serving pods' labels, which the Deployment and the Service select. The
migration Job's pod has component "migrate", so the Service never selects it.
*/}}
{{- define "oncehook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oncehook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "oncehook.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "oncehook.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "oncehook.tag" .) -}}
{{- end -}}
