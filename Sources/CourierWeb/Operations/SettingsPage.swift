import CourierStore

/// The Configuration page: virtual domain, global resources, signing key, content isolation.
struct SettingsPage {
    let chrome: Chrome
    let virtualDomain: String?
    let domainValue: String
    let globalHost: String
    let appKey: String
    let globalLocked: Bool
    let keyFingerprint: String?
    let keyBits: Int
    let packageCount: Int
    let errors: [String: String]
    let formError: String?
    let notice: String?
    let separateContentHost: Bool
    let consoleURL: String
    let publicURL: String
    let sameSiteWarning: Bool
    let virtualDomainAction = Route.virtualDomain.path()
    let globalAction = Route.globalLocation.path()
    let signingKeyAction = Route.signingKey.path()
    let generateKeyAction = Route.generateKey.path()
    let publicKeyURL = Route.apiPublicKey.path()
    let approvalAction = Route.approvalSettings.path()
    let officialNeedsApproval: Bool
    let grayNeedsApproval: Bool
    let updateIntervalAction = Route.updateInterval.path()
    let updateReqRate: String
    var webhook: WebhookBox?

    /// `form` holds what was typed, shown again after a refusal.
    init(settings s: SettingsRecord, counts: (all: Int, global: Int), keyBits: Int, config: CourierConfiguration,
         form: FormFields, failure: FormFailure, notice: String?, chrome: Chrome) {
        self.chrome = chrome
        virtualDomain = s.virtualDomain
        domainValue = form["virtualDomain"]
        globalHost = form.has("globalHost") ? form["globalHost"] : (s.globalHost ?? "")
        appKey = form.has("appKey") ? form["appKey"] : (s.appKey ?? "")
        globalLocked = counts.global > 0
        keyFingerprint = s.signingKeyFingerprint
        officialNeedsApproval = s.officialNeedsApproval
        grayNeedsApproval = s.grayNeedsApproval
        updateReqRate = form.has("updateReqRate") ? form["updateReqRate"] : String(s.updateReqRate)
        self.keyBits = keyBits
        packageCount = counts.all
        errors = failure.fields
        formError = failure.formError
        self.notice = notice
        separateContentHost = config.separateContentHost
        consoleURL = config.consoleURL ?? config.publicURL
        publicURL = config.publicURL
        sameSiteWarning = config.contentHostIsSameSite && !config.secureCookies
    }
}
