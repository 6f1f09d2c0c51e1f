#!/usr/bin/env bash
# Fetches Apache Kafka (KRaft) jars from Maven Central with an slf4j binding; cached by version.
# install-kafka.sh [VERSION]: the bootstrap cluster's version by default; strimzi-sim's brokers ask for theirs.
source "$(dirname "$0")/common.sh"
KAFKA_VERSION="${1:-$KAFKA_VERSION}"
out="$CACHE/kafka-$KAFKA_VERSION"
mkdir -p "$out"
pom=$(cat <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.polaris</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.17</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>2.0.17</version></dependency>
  </dependencies>
</project>
POM
)
# The pom is the cache key: a changed dependency list refetches.
[[ -f "$out/.done" && "$(cat "$out/pom.xml")" == "$pom" ]] && exit 0
rm -rf "$out/libs" "$out/.done"
echo "$pom" > "$out/pom.xml"
(cd "$out" && mvn -q -B -Dmaven.repo.local="$CACHE/m2" dependency:copy-dependencies -DoutputDirectory="$out/libs" -DincludeScope=runtime)
touch "$out/.done"
