/// Create an HTML5 App: the form, what was typed, and why it was refused.
struct NewAppPage {
    let chrome: Chrome
    let id: String
    let name: String
    let errors: [String: String]
    let formError: String?
    let action = Route.apps.path()
    let appsURL = Route.apps.path()

    init(id: String, name: String, failure: FormFailure, chrome: Chrome) {
        self.chrome = chrome
        self.id = id
        self.name = name
        errors = failure.fields
        formError = failure.formError
    }
}
