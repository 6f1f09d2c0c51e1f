{{- define "polaris.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "polaris.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "polaris.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "polaris.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* The Deployments (and Services) the chart renders, by component name. */ -}}
{{- define "polaris.workloads" -}}
api relay projector worker{{ if and .Values.istio.enabled .Values.istio.canary.enabled }} api-canary{{ end }}
{{- end -}}

{{- /* A Service's name inside the mesh: .root, .name (the component). */ -}}
{{- define "polaris.host" -}}
{{ include "polaris.fullname" .root }}-{{ .name }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.istio.clusterDomain }}
{{- end -}}

{{- /* Where the API's VirtualService sends a request: the API, or the API and its canary by weight. */ -}}
{{- define "polaris.istio.route" -}}
- destination:
    host: {{ include "polaris.host" (dict "root" . "name" "api") }}
    port:
      number: {{ .Values.service.port }}
  {{- if .Values.istio.canary.enabled }}
  weight: {{ sub 100 (int .Values.istio.canary.weight) }}
- destination:
    host: {{ include "polaris.host" (dict "root" . "name" "api-canary") }}
    port:
      number: {{ .Values.service.port }}
  weight: {{ int .Values.istio.canary.weight }}
  {{- end }}
{{- end -}}

{{- /* The retries of a request Polaris makes safe to repeat: .retryOn names the failures. */ -}}
{{- define "polaris.istio.retries" -}}
attempts: {{ .root.Values.istio.virtualService.retries.attempts }}
perTryTimeout: {{ .root.Values.istio.virtualService.retries.perTryTimeout }}
retryOn: {{ .retryOn }}
{{- end -}}
