{{/* The chart name, cut to the 63 characters a label value may have. */}}
{{- define "gpu-provisioner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's objects: the override, else the release name when it already
holds the chart name (release `gpu-provisioner` gives `gpu-provisioner`), else both joined.
*/}}
{{- define "gpu-provisioner.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "gpu-provisioner.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the provisioner pods; they never change across upgrades. */}}
{{- define "gpu-provisioner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpu-provisioner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object of the release. */}}
{{- define "gpu-provisioner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gpu-provisioner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kaito
{{- with .Values.additionalLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The provisioner image, by digest when one is given. */}}
{{- define "gpu-provisioner.image" -}}
{{- $image := .Values.controller.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The identity's client id and tenant, from azure.* or the upstream workloadIdentity.*. */}}
{{- define "gpu-provisioner.clientId" -}}
{{- coalesce .Values.azure.clientId .Values.workloadIdentity.clientId "" -}}
{{- end -}}
{{- define "gpu-provisioner.tenantId" -}}
{{- coalesce .Values.azure.tenantId .Values.workloadIdentity.tenantId "" -}}
{{- end -}}

{{/* The cluster name, from azure.clusterName or the upstream settings.azure.clusterName. */}}
{{- define "gpu-provisioner.clusterName" -}}
{{- coalesce .Values.azure.clusterName .Values.settings.azure.clusterName "" -}}
{{- end -}}

{{/* Whether the replicas elect a leader: asked for, or needed because there are several. */}}
{{- define "gpu-provisioner.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* Whether the pod signs in with an AKS workload identity. */}}
{{- define "gpu-provisioner.workloadIdentity" -}}
{{- if eq .Values.azure.authMode "workload-identity" -}}
true
{{- end -}}
{{- end -}}
