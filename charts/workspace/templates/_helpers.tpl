{{/* The chart name, cut to the 63 characters a label value may have. */}}
{{- define "workspace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's objects: the override, else the release name when it already
holds the chart name (release `kaito-workspace` gives `kaito-workspace`), else both joined.
*/}}
{{- define "workspace.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "workspace.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount of the controller. */}}
{{- define "workspace.serviceAccountName" -}}
{{- printf "%s-sa" (include "workspace.fullname" .) -}}
{{- end -}}

{{/* Labels that select the controller pods; they never change across upgrades. */}}
{{- define "workspace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workspace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "workspace.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "workspace.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kaito
{{- end -}}

{{/* repository:tag of an image, the tag defaulting to the chart's appVersion. */}}
{{- define "workspace.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{/* Whether the replicas elect a leader: asked for, or needed because there are several. */}}
{{- define "workspace.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* The feature gates as `Name=value` pairs joined with commas, sorted by name. */}}
{{- define "workspace.featureGates" -}}
{{- $gates := list -}}
{{- range $name, $value := .Values.featureGates -}}
{{- $gates = append $gates (printf "%s=%v" $name $value) -}}
{{- end -}}
{{- join "," $gates -}}
{{- end -}}

{{/* The node-request API after the upstream Karpenter gate is taken into account. */}}
{{- define "workspace.nodeRequestAPI" -}}
{{- $gate := index .Values.featureGates "Karpenter" | default "false" | toString -}}
{{- if eq $gate "true" -}}
nodeclaim
{{- else -}}
{{- .Values.nodeRequestAPI -}}
{{- end -}}
{{- end -}}
