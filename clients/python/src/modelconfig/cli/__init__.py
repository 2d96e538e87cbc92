"""modelconfigctl, the operator's command line: `pip install 'modelconfig-client[cli]'`."""
