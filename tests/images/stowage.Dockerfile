# The runtime stage of the top-level Dockerfile, on the test suite's locally built Debian base
# (which already has ca-certificates), with a binary built on the host. Used by scripts/images.sh.
ARG BASE=stowage-test/base:test
FROM ${BASE}
COPY stowage /usr/local/bin/stowage
ENV STOWAGE_BACKUP_DIR=/backups
VOLUME /backups
# /metrics, /healthz, /readyz and the API of `stowage run`.
EXPOSE 9847
ENTRYPOINT ["stowage"]
CMD ["run"]
LABEL org.stowage.test-image="stowage"
