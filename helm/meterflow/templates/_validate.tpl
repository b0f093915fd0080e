{{/* Refuse values that render but cannot work, with a message naming the value. */}}
{{- define "meterflow.validate" -}}
{{- $partitions := int .Values.settings.topicPartitions }}
{{- range $component := list "processor" "sink" }}
{{- $v := index $.Values $component }}
{{- if gt (int $v.replicaCount) $partitions }}
{{- fail (printf "%s.replicaCount (%d) exceeds settings.topicPartitions (%d): a consumer group has at most one active member per partition; raise the partitions or lower the replicas" $component (int $v.replicaCount) $partitions) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.maxReplicas) $partitions) }}
{{- fail (printf "%s.autoscaling.maxReplicas (%d) exceeds settings.topicPartitions (%d): replicas past the partition count stay idle" $component (int $v.autoscaling.maxReplicas) $partitions) }}
{{- end }}
{{- end }}
{{- range $component := list "processor" "sink" "api" }}
{{- $a := (index $.Values $component).autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" $component (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.enabled .Values.externalKafka.bootstrap }}
{{- fail "set either kafka.enabled (bundled Kafka) or externalKafka.bootstrap, not both" }}
{{- end }}
{{- if and .Values.timescaledb.enabled .Values.externalDatabase.host }}
{{- fail "set either timescaledb.enabled (bundled TimescaleDB) or externalDatabase.host, not both" }}
{{- end }}
{{- if and .Values.mosquitto.enabled .Values.externalMqtt.host }}
{{- fail "set either mosquitto.enabled (bundled broker) or externalMqtt.host, not both" }}
{{- end }}
{{- end }}
